"""The hosting contract, once for every framework this environment has (``tests.frameworks``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.frameworks import Framework, available
from tests.serving import ModelTree, starter


def pytest_generate_tests(metafunc: Any) -> None:
    if "framework" in metafunc.fixturenames:
        frameworks = available()
        metafunc.parametrize(
            "framework", frameworks, ids=[f.name for f in frameworks], scope="module"
        )


@pytest.fixture
def tree(tmp_path: Path, framework: Framework) -> ModelTree:
    return ModelTree(tmp_path / "ml", framework.save_model)


@pytest.fixture
def start(tmp_path: Path, framework: Framework) -> Iterator:
    yield from starter(tmp_path, {"EIKIT_FRAMEWORK": framework.name})
