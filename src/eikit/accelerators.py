"""Which accelerator to use, and why the others were not.

A probe is a callable returning a ``ProbeResult``: available, or the reason it is not.
Framework runtimes supply the probes (only they may import a framework); this module
walks them in order of preference and builds the fallback chain. Nothing is probed at
import time, and tests inject their own probes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from eikit.errors import ConfigurationError

log = logging.getLogger(__name__)

# Order of preference with EIKIT_ACCELERATOR=auto: EI first because SageMaker attached it
# on purpose, CPU last because it is always there.
KINDS = ("eia", "neuron", "cuda", "cpu")


@dataclass(frozen=True)
class ProbeResult:
    kind: str
    available: bool
    reason: str
    count: int = 0
    detail: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "kind": self.kind,
            "available": self.available,
            "reason": self.reason,
            "count": self.count,
            "detail": dict(self.detail),
        }


Probe = Callable[[], ProbeResult]


@dataclass(frozen=True)
class Detection:
    """Every probe's answer, and the chain to try: the first is the choice."""

    requested: str
    results: List[ProbeResult]
    chain: List[ProbeResult]

    @property
    def chosen(self) -> ProbeResult:
        return self.chain[0]

    def describe(self) -> str:
        others = "; ".join(
            "%s: %s" % (r.kind, r.reason) for r in self.results if r is not self.chosen
        )
        return "accelerator %s (%s; requested %s)%s" % (
            self.chosen.kind,
            self.chosen.reason,
            self.requested,
            " - not chosen: " + others if others else "",
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "requested": self.requested,
            "chosen": self.chosen.kind,
            "fallback": [r.kind for r in self.chain[1:]],
            "probes": [r.to_dict() for r in self.results],
        }


def run_probe(kind: str, probe: Probe) -> ProbeResult:
    """A probe that raises is reported as unavailable, never crashes detection."""
    try:
        return probe()
    except Exception as exc:  # a broken driver or import must not stop the server
        log.debug("probe %s raised", kind, exc_info=True)
        return ProbeResult(kind, False, "probe failed: %s: %s" % (type(exc).__name__, exc))


def detect(probes: Dict[str, Probe], requested: str = "auto", strict: bool = False) -> Detection:
    """Run the probes in order of preference and choose.

    ``requested`` other than ``auto`` must be available or this raises. With ``auto`` the
    chain holds every available kind, best first, so a model that fails to load can fall
    back; ``strict`` keeps only the first.
    """
    probes = dict(probes)
    probes.setdefault("cpu", cpu_probe)
    results = [run_probe(kind, probes[kind]) for kind in KINDS if kind in probes]
    available = [r for r in results if r.available]
    if requested == "auto":
        chain = available
    else:
        wanted = [r for r in results if r.kind == requested]
        if not wanted:
            raise ConfigurationError("EIKIT_ACCELERATOR=%s: no probe for it" % requested)
        if not wanted[0].available:
            raise ConfigurationError(
                "EIKIT_ACCELERATOR=%s but it is not available: %s" % (requested, wanted[0].reason)
            )
        chain = wanted
    if strict:
        chain = chain[:1]
    detection = Detection(requested, results, chain)
    log.info("%s", detection.describe())
    return detection


def cpu_probe() -> ProbeResult:
    return ProbeResult("cpu", True, "always available", count=1)


def ei_signal_reason(accelerator_present: bool) -> Optional[str]:
    """SageMaker's signal that an EI accelerator is attached; None when it is set."""
    if accelerator_present:
        return None
    return "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT is not true (no EI accelerator attached)"


def neuron_device_nodes(device_root: Path) -> List[Path]:
    """The Inferentia/Trainium device nodes (``/dev/neuron0``, ...)."""
    try:
        return sorted(device_root.glob("neuron[0-9]*"))
    except OSError:
        return []


# --- what the runtimes' probes share (none of it imports a framework) -----------------


def module_installed(module: str) -> bool:
    """Whether ``module`` could be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a half-imported module or a broken parent package
        return False


def distribution_version(name: str) -> Optional[str]:
    """The installed version of distribution ``name``, or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def nvidia_device_nodes(device_root: Path) -> List[Path]:
    """``nvidia0``, ``nvidia1``, ... under ``device_root``: looked for before a framework is
    imported to count GPUs (importing one costs seconds)."""
    try:
        return sorted(device_root.glob("nvidia[0-9]*"))
    except OSError:
        return []
