import logging

import pytest

from eikit.accelerators import ProbeResult, detect, neuron_device_nodes
from eikit.errors import ConfigurationError


def probe(kind, available, reason="test"):
    return lambda: ProbeResult(kind, available, reason, count=1 if available else 0)


def test_auto_takes_the_best_available_and_keeps_the_rest_as_fallback(caplog):
    caplog.set_level(logging.INFO, logger="eikit")
    detection = detect(
        {
            "eia": probe("eia", False, "no EI signal"),
            "neuron": probe("neuron", False, "no /dev/neuron*"),
            "cuda": probe("cuda", True, "1 GPU"),
        }
    )
    assert detection.chosen.kind == "cuda"
    assert [r.kind for r in detection.chain] == ["cuda", "cpu"]
    line = caplog.records[-1].getMessage()
    assert "accelerator cuda" in line and "no EI signal" in line and "no /dev/neuron*" in line


def test_strict_keeps_no_fallback():
    detection = detect({"cuda": probe("cuda", True)}, strict=True)
    assert [r.kind for r in detection.chain] == ["cuda"]


def test_forced_kind_must_be_available():
    with pytest.raises(ConfigurationError, match="EIKIT_ACCELERATOR=cuda.*no GPU"):
        detect({"cuda": probe("cuda", False, "no GPU")}, requested="cuda")
    assert detect({"cuda": probe("cuda", True)}, requested="cpu").chosen.kind == "cpu"


def test_a_probe_that_raises_is_reported_not_fatal():
    def broken():
        raise OSError("driver exploded")

    detection = detect({"cuda": broken})
    cuda = [r for r in detection.results if r.kind == "cuda"][0]
    assert not cuda.available and "driver exploded" in cuda.reason
    assert detection.chosen.kind == "cpu"


def test_neuron_nodes_are_found_under_the_device_root(tmp_path):
    (tmp_path / "neuron0").touch()
    (tmp_path / "neuron1").touch()
    (tmp_path / "null").touch()
    assert [p.name for p in neuron_device_nodes(tmp_path)] == ["neuron0", "neuron1"]


def test_default_workers_per_accelerator(monkeypatch):
    import os

    from eikit_pytorch import PyTorchRuntime

    runtime = PyTorchRuntime()
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert runtime.default_workers(ProbeResult("cpu", True, "", count=1)) == 8
    assert runtime.default_workers(ProbeResult("cuda", True, "", count=4)) == 4
    assert runtime.default_workers(ProbeResult("neuron", True, "", count=2)) == 2
    assert runtime.default_workers(ProbeResult("eia", True, "", count=1)) == 1
