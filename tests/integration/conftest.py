"""PyTorch-only integration tests: real ``serve`` processes with TorchScript models built
here (the suites every runtime passes are in ``tests/contract``)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from eikit.local import ServerProcess

torch = pytest.importorskip("torch")

from tests.frameworks import expected, save_torch_linear  # noqa: E402
from tests.serving import Endpoint, starter  # noqa: E402
from tests.serving import ModelTree as GenericModelTree  # noqa: E402

__all__ = ["Endpoint", "ModelTree", "expected", "save_linear_model", "served"]


def save_linear_model(path: Path) -> None:
    """y = [x0, x1 + x2 + x3 + 0.5] for a 4-feature input: easy to check by hand."""
    save_torch_linear(path.parent)
    if path.name != "model.pt":
        (path.parent / "model.pt").rename(path)


class ModelTree(GenericModelTree):
    """A SageMaker base dir: ``model/model.pt`` and optionally ``model/code/``."""

    def __init__(self, base: Path) -> None:
        super().__init__(base, save_torch_linear)


@contextlib.contextmanager
def served(base: Path, env: Dict[str, str]) -> Iterator[Tuple[ServerProcess, Path]]:
    """A ready server on a new model tree under ``base`` (for module-scoped fixtures that
    share one server); its log in ``base/server.log``; stopped afterwards."""
    tree = ModelTree(base / "ml")
    log_path = base / "server.log"
    server = ServerProcess(tree.base, env)
    server.start(stdout=log_path.open("wb"))
    try:
        status = server.wait_ready(120)
        assert status == 200, "server not ready (%s):\n%s" % (status, log_path.read_text())
        yield server, log_path
    finally:
        server.stop()


@pytest.fixture
def tree(tmp_path: Path) -> ModelTree:
    return ModelTree(tmp_path / "ml")


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """start(tree, env=..., ready=True) -> Endpoint; every server is stopped afterwards."""
    yield from starter(tmp_path)
