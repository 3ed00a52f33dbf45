"""The PyTorch runtime's own unit tests: skipped where torch is not installed (the core
and other frameworks' test environments), run in the pytorch one."""

from typing import Any, Iterator

import pytest

from tests.neuron_host import import_standins

pytest.importorskip("torch")


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in ``torch_neuron`` / ``torch_neuronx`` (tests/pytorch/fakes) importable;
    yields ``neuron_standin``, whose ``calls`` records each trace."""
    yield from import_standins(monkeypatch)
