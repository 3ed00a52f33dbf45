"""MXNet runtime tests: run in the ``mxnet`` nox session (mxnet 1.9.1, numpy<1.24), which
installs mxnet and sets EIKIT_REQUIRE_MXNET=1, so that a broken install fails here; skipped in
environments without mxnet (``.venv`` runs ``pytest tests``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

if os.environ.get("EIKIT_REQUIRE_MXNET") == "1":  # the mxnet nox session: never skip
    import mxnet  # noqa: F401
else:
    pytest.importorskip("mxnet")

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
