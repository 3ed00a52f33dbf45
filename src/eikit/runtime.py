"""The contract between the framework-agnostic core and a framework runtime.

Runtimes are plugins found through the entry-point group ``eikit.runtimes`` and imported
only when asked for, so the core never imports a framework.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from eikit.accelerators import Probe, ProbeResult
from eikit.errors import ConfigurationError

if TYPE_CHECKING:
    from eikit.settings import Settings

ENTRY_POINT_GROUP = "eikit.runtimes"


class ModelSession(ABC):
    """One worker's view of a framework on one device: the default hooks live here."""

    def __init__(self, accelerator: ProbeResult, device: str) -> None:
        self.accelerator = accelerator
        self.device = device

    @abstractmethod
    def load(self, model_dir: Path) -> Any:
        """The default ``model_fn``: load the model files in ``model_dir`` onto the device."""

    @abstractmethod
    def prepare(self, model: Any) -> Any:
        """Put a model returned by a user ``model_fn`` on the device (a no-op where it is)."""

    @abstractmethod
    def predict(self, model: Any, data: Any) -> Any:
        """The default ``predict_fn``: inputs to the device, run, outputs back as CPU arrays."""

    def to_wire(self, prediction: Any) -> Any:
        """Turn framework objects into things the encoders take (arrays, lists, bytes)."""
        return prediction


class Runtime(ABC):
    name = ""
    install_hint = ""

    @abstractmethod
    def probes(self, settings: Settings) -> Dict[str, Probe]:
        """Probes for the accelerators this framework can use, keyed by kind."""

    @abstractmethod
    def session(self, accelerator: ProbeResult, settings: Settings, worker: int) -> ModelSession:
        """Open the framework on ``accelerator`` for worker number ``worker``."""

    def default_workers(self, accelerator: ProbeResult) -> int:
        if accelerator.kind == "cpu":
            return os.cpu_count() or 1
        if accelerator.kind == "eia":
            return 1  # one accelerator, reached over the network: more workers only queue
        return max(1, accelerator.count)

    def profile_model(self, model_dir: Path, example: Any) -> Optional[Dict[str, float]]:
        """For ``eikit advise``: one forward pass on ``example`` (a numpy batch) measured
        in-process: ``flops``, ``parameter_bytes``, ``forward_ms`` (one CPU thread).

        None where the framework cannot count them. The default calls
        ``profile_model(model_dir, example)`` in the runtime package's ``flops`` module
        when it has one, so the framework code stays in the runtime's package.
        """
        import importlib

        package = type(self).__module__.rsplit(".", 1)[0]
        try:
            module = importlib.import_module(package + ".flops")
        except ModuleNotFoundError as exc:
            if exc.name != package + ".flops":
                raise
            return None
        result = module.profile_model(model_dir, example)
        return dict(result) if result is not None else None


def _entry_points() -> List[Any]:
    from importlib import metadata

    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, []))  # Python 3.8/3.9


def available_runtimes() -> List[str]:
    return sorted({ep.name for ep in _entry_points()})


def find_runtime(name: Optional[str]) -> Runtime:
    """The runtime called ``name``, or the only one installed when ``name`` is None."""
    eps = {ep.name: ep for ep in _entry_points()}
    if name is None:
        if len(eps) != 1:
            raise ConfigurationError(
                "set EIKIT_FRAMEWORK to one of: %s" % (", ".join(sorted(eps)) or "(none installed)")
            )
        name = next(iter(eps))
    if name not in eps:
        raise ConfigurationError(
            "no eikit runtime %r (installed: %s)" % (name, ", ".join(sorted(eps)) or "none")
        )
    try:
        factory = eps[name].load()
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError("runtime %r cannot be imported: %s" % (name, exc)) from exc
    runtime = factory()
    if not isinstance(runtime, Runtime):
        raise ConfigurationError("entry point %r is not an eikit Runtime" % name)
    return runtime
