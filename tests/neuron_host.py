"""A stand-in Neuron host for tests: device nodes (plain files named ``neuron0``, ...) under a
folder that plays ``/dev``, and the driver's sysfs tree (``core_count``,
``info/architecture/instance_type``) under a folder that plays
``/sys/devices/virtual/neuron_device``. eikit reads both through EIKIT_DEVICE_ROOT and
EIKIT_NEURON_SYSFS_ROOT. No Inferentia is involved."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

FAKES = Path(__file__).parent / "pytorch" / "fakes"  # torch_neuron, torch_neuronx stand-ins
STANDINS = ("torch_neuron", "torch_neuronx", "neuron_standin")


def import_standins(monkeypatch: Any) -> Iterator[Any]:
    """Make the stand-in ``torch_neuron`` / ``torch_neuronx`` importable in this process
    (fresh, for one test); yields ``neuron_standin``, whose ``calls`` records each trace. A
    fixture's body: ``yield from import_standins(monkeypatch)``."""
    for name in list(sys.modules):
        if name.split(".")[0] in STANDINS:
            del sys.modules[name]
    monkeypatch.syspath_prepend(str(FAKES))
    import neuron_standin

    neuron_standin.calls.clear()
    yield neuron_standin
    for name in list(sys.modules):
        if name.split(".")[0] in STANDINS:
            del sys.modules[name]


def fake_neuron_host(
    root: Path,
    devices: int = 1,
    cores: Optional[int] = 4,
    instance_type: Optional[str] = "Inf1",
) -> Tuple[Path, Path]:
    """(device root, sysfs root); ``cores``/``instance_type`` None leave them out of sysfs."""
    dev = root / "dev"
    sysfs = root / "sys"
    dev.mkdir(parents=True, exist_ok=True)
    sysfs.mkdir(parents=True, exist_ok=True)
    for index in range(devices):
        (dev / ("neuron%d" % index)).touch()
        node = sysfs / ("neuron%d" % index)
        (node / "info" / "architecture").mkdir(parents=True, exist_ok=True)
        if cores is not None:
            (node / "core_count").write_text("%d\n" % cores)
        if instance_type is not None:
            (node / "info" / "architecture" / "instance_type").write_text(instance_type + "\n")
    return dev, sysfs


def neuron_env(dev: Path, sysfs: Path, record: Optional[Path] = None) -> Dict[str, str]:
    """A server's environment on the fake host, with the stand-in packages importable."""
    env = {
        "EIKIT_DEVICE_ROOT": str(dev),
        "EIKIT_NEURON_SYSFS_ROOT": str(sysfs),
        "PYTHONPATH": os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")]),
    }
    if record is not None:
        record.mkdir(parents=True, exist_ok=True)
        env["EIKIT_STANDIN_RECORD"] = str(record)
    return env
