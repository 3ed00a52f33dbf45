"""The Neuron devices and cores this host offers, and which core each worker owns.

Device nodes are ``/dev/neuron0``, ``/dev/neuron1``, ... (under ``EIKIT_DEVICE_ROOT``). Their
cores and generation come from the Neuron driver's sysfs tree
(``/sys/devices/virtual/neuron_device/neuronN/core_count`` and ``info/architecture/``,
AWS's Neuron Sysfs User Guide), else from ``neuron-ls --json-output`` (a list of devices
with ``nc_count``), else from the generation's cores per chip. The runtime numbers cores
across the visible devices from 0; ``NEURON_RT_VISIBLE_CORES`` (``0-3``, ``0,2``) narrows
them. Each worker is pinned to one core: ``NEURON_RT_VISIBLE_CORES=<core>`` and
``NEURON_RT_NUM_CORES=1`` (the runtime lets the first take precedence). Tests inject the
device root, the sysfs root and the ``neuron-ls`` runner.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from eikit.accelerators import neuron_device_nodes
from eikit.errors import ConfigurationError
from eikit.neuron.facts import GENERATIONS

SYSFS_ROOT = Path("/sys/devices/virtual/neuron_device")
NeuronLs = Callable[[], Optional[str]]  # neuron-ls --json-output's stdout, or None


@dataclass(frozen=True)
class NeuronHost:
    devices: List[str]  # device node names, in order
    cores_per_device: List[int]
    generation: Optional[str]  # "inf1", "inf2", or None when unknown
    hardware: str  # what the driver calls it ("Inf1", "NCv2", ...) or "unknown"
    source: str  # where the core counts came from
    visible: List[int] = field(default_factory=list)  # core ids workers may use

    @property
    def total_cores(self) -> int:
        return sum(self.cores_per_device)

    def to_dict(self) -> Dict[str, object]:
        return {
            "devices": list(self.devices),
            "cores_per_device": list(self.cores_per_device),
            "generation": self.generation,
            "hardware": self.hardware,
            "core_source": self.source,
            "cores": list(self.visible),
        }


def run_neuron_ls() -> Optional[str]:
    """``neuron-ls --json-output``'s output, None when the tool is missing or fails."""
    binary = shutil.which("neuron-ls") or (
        "/opt/aws/neuron/bin/neuron-ls" if Path("/opt/aws/neuron/bin/neuron-ls").exists() else None
    )
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [binary, "--json-output"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 and done.stdout.strip() else None


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def generation_of_hardware(text: str) -> Optional[str]:
    """eikit's generation for what the driver reports: an instance type (``Inf1``, ``Inf2``,
    ``Trn1``), a device name (``Inferentia2``) or an architecture (``NCv1``, ``v2``)."""
    word = text.strip().lower()
    if word.startswith(("inf1", "inferentia1")) or word in ("inferentia", "ncv1", "v1"):
        return "inf1"
    if word.startswith(("inf2", "inferentia2", "trn1", "trainium1")) or word in ("ncv2", "v2"):
        return "inf2"
    if word == "trainium":  # Trn1's chip (Trainium2/3 are named with their number)
        return "inf2"
    return None


def _sysfs(sysfs_root: Path, device: str) -> Dict[str, Optional[str]]:
    base = sysfs_root / device
    arch = base / "info" / "architecture"
    return {
        "cores": _read(base / "core_count"),
        "instance_type": _read(arch / "instance_type"),
        "device_name": _read(arch / "device_name") or _read(arch / "device_type"),
        "arch_type": _read(arch / "arch_type"),
    }


def _from_neuron_ls(text: Optional[str], count: int) -> Optional[List[int]]:
    """Cores per device from neuron-ls's JSON, when it lists ``count`` devices."""
    if not text:
        return None
    try:
        listing = json.loads(text)
    except ValueError:
        return None
    if not isinstance(listing, list) or len(listing) != count:
        return None
    cores = []
    for device in listing:
        value = device.get("nc_count") if isinstance(device, dict) else None
        if not isinstance(value, int) or value < 1:
            return None
        cores.append(value)
    return cores


def discover(
    device_root: Path,
    sysfs_root: Path = SYSFS_ROOT,
    neuron_ls: Optional[NeuronLs] = run_neuron_ls,
    visible_setting: Optional[str] = None,
) -> NeuronHost:
    """The devices under ``device_root`` and their cores; ``visible_setting`` is
    ``NEURON_RT_VISIBLE_CORES`` as the container got it (None: every core)."""
    nodes = [node.name for node in neuron_device_nodes(device_root)]
    found = [_sysfs(sysfs_root, name) for name in nodes]
    hardware = next(
        (
            value
            for info in found
            for value in (info["instance_type"], info["device_name"], info["arch_type"])
            if value
        ),
        "unknown",
    )
    generation = generation_of_hardware(hardware) if hardware != "unknown" else None
    counts: Optional[List[int]] = None
    source = ""
    if nodes and all(info["cores"] and info["cores"].isdigit() for info in found):
        counts = [int(str(info["cores"])) for info in found]
        source = "sysfs %s/*/core_count" % sysfs_root
    if counts is None and nodes and neuron_ls is not None:
        counts = _from_neuron_ls(neuron_ls(), len(nodes))
        source = "neuron-ls --json-output" if counts else ""
    if counts is None:
        per = GENERATIONS[generation].cores_per_device if generation else 1
        counts = [per] * len(nodes)
        source = (
            "%d per %s chip (no core count in sysfs or neuron-ls)" % (per, generation)
            if generation
            else "1 per device (generation unknown: no sysfs, no neuron-ls)"
        )
    host = NeuronHost(nodes, counts, generation, hardware, source)
    visible = visible_cores(visible_setting, host.total_cores) if nodes else []
    return NeuronHost(nodes, counts, generation, hardware, source, visible)


def parse_cores(text: str) -> List[int]:
    """``0-3``, ``0,2``, ``1,4-5`` -> sorted core ids; ConfigurationError when malformed."""
    cores: List[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ConfigurationError(
                "NEURON_RT_VISIBLE_CORES=%r: expected core ids and ranges such as 0-3 or 0,2" % text
            )
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise ConfigurationError("NEURON_RT_VISIBLE_CORES=%r: range %s is empty" % (text, part))
        cores.extend(range(first, last + 1))
    if not cores:
        raise ConfigurationError("NEURON_RT_VISIBLE_CORES=%r names no core" % text)
    return sorted(set(cores))


def visible_cores(setting: Optional[str], total: int) -> List[int]:
    """The cores workers may use: every core, or those the setting names (which must
    exist)."""
    if setting is None or not setting.strip():
        return list(range(total))
    cores = parse_cores(setting)
    missing = [core for core in cores if core >= total]
    if missing:
        raise ConfigurationError(
            "NEURON_RT_VISIBLE_CORES=%s names core(s) %s, but the visible Neuron devices have "
            "%d core(s) (0-%d)" % (setting, ", ".join(map(str, missing)), total, max(0, total - 1))
        )
    return cores


def core_of_worker(cores: Sequence[int], worker: int) -> int:
    """The core worker number ``worker`` owns: the cores in turn (a multi-model endpoint's
    models start their numbering further on and wrap around)."""
    if not cores:
        raise ConfigurationError("no NeuronCore to pin a worker to")
    return int(cores[worker % len(cores)])


def pinning(cores: Sequence[int], worker: int) -> Dict[str, str]:
    """The environment that pins ``worker`` to its own NeuronCore."""
    return {
        "NEURON_RT_VISIBLE_CORES": str(core_of_worker(cores, worker)),
        "NEURON_RT_NUM_CORES": "1",
    }
