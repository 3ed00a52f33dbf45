"""Fixtures shared by the unit tests that need a Docker engine (marked ``container``)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A low-level client to a running engine; the test is skipped, with why, when none runs."""
    pytest.importorskip("docker")
    from eikit.images import build

    reason = build.engine_unavailable_reason()
    if reason:
        pytest.skip(reason)
    api = build.connect()
    yield api
    api.close()
