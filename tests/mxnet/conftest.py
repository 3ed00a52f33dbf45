"""MXNet runtime tests: run in the ``mxnet`` nox session (mxnet 1.9.1, numpy<1.24), which
installs mxnet; skipped in environments without it (``.venv`` runs ``pytest tests``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

mx = pytest.importorskip("mxnet")

from tests.frameworks import save_mxnet_linear  # noqa: E402
from tests.serving import ModelTree, starter  # noqa: E402


@pytest.fixture
def tree(tmp_path: Path) -> ModelTree:
    """A SageMaker base dir whose model/ holds the linear Module checkpoint."""
    return ModelTree(tmp_path / "ml", save_mxnet_linear)


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """start(tree, env=..., ready=True) -> Endpoint for the mxnet runtime."""
    yield from starter(tmp_path, {"EIKIT_FRAMEWORK": "mxnet"})
