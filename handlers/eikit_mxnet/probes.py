"""Probes for the accelerators MXNet can use: EI and CUDA (CPU comes from the core).

Each returns available, or the precise reason it is not. Decisions worth knowing:

- EI needs SageMaker's signal (``SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true``) first; the
  EI build is only looked for when the signal is set. Two builds exist: AWS's whole
  ``amazonei_mxnet`` (1.4-1.5, the distribution replaces mxnet while the module stays
  ``mxnet``) and stock mxnet 1.7 with the ``eimx`` plugin. ``eimx`` is really imported, so
  a broken install is reported here rather than at load; either way ``mx.eia`` must exist.
- CUDA goes through a ``CudaCheck`` callable, the seam tests replace. The default first
  looks for NVIDIA device nodes under the device root and, only when there are some,
  imports mxnet and asks ``mx.context.num_gpus()``. So on a CPU host the probes never
  import mxnet in the serving frontend.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

from eikit.accelerators import (
    ProbeResult,
    distribution_version,
    ei_signal_reason,
    module_installed,
    nvidia_device_nodes,
)

# (device count, reason): count 0 means unavailable and the reason says why.
CudaCheck = Callable[[], Tuple[int, str]]


def _import(name: str) -> Tuple[Optional[Any], str]:
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # an EI build for another mxnet or Python fails in many ways
        return None, "%s does not import (%s: %s)" % (name, type(exc).__name__, exc)


def mxnet_eia() -> Tuple[Optional[str], str]:
    """(api, description) when this mxnet can bind to ``mx.eia()``, else (None, why not).
    api is ``eimx`` (stock mxnet with the plugin) or ``amazonei_mxnet`` (AWS's build)."""
    if not module_installed("mxnet"):
        return None, "mxnet is not installed"
    if module_installed("eimx"):
        plugin, failure = _import("eimx")
        if plugin is None:
            return None, failure
        api = "eimx"
        found = "eimx %s" % (distribution_version("eimx") or getattr(plugin, "__version__", "?"))
    else:
        api = "amazonei_mxnet"
        found = "amazonei_mxnet %s" % distribution_version("amazonei_mxnet")
    mx, failure = _import("mxnet")
    if mx is None:
        return None, failure
    eia = getattr(mx, "eia", None)
    if not callable(eia) or getattr(eia, "eikit_stand_in", False):
        return None, "mxnet %s has no mx.eia() (neither amazonei_mxnet nor eimx is installed)" % (
            getattr(mx, "__version__", "?")
        )
    if api == "amazonei_mxnet" and distribution_version("amazonei_mxnet") is None:
        found = "EI-enabled mxnet %s" % getattr(mx, "__version__", "?")
    return api, "%s, mx.eia()" % found


def eia_probe(accelerator_present: bool) -> ProbeResult:
    missing_signal = ei_signal_reason(accelerator_present)
    if missing_signal is not None:
        return ProbeResult("eia", False, missing_signal)
    api, text = mxnet_eia()
    if api is None:
        return ProbeResult(
            "eia",
            False,
            "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true but mxnet cannot use EI: %s" % text,
        )
    return ProbeResult(
        "eia",
        True,
        "EI accelerator attached (SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true); %s" % text,
        count=1,
        detail={"api": api},
    )


def mxnet_cuda_check(device_root: Path = Path("/dev")) -> Tuple[int, str]:
    """The real CUDA check: device nodes, then ``mx.context.num_gpus()``."""
    if not nvidia_device_nodes(device_root):
        return 0, "no NVIDIA devices (%s/nvidia[0-9]*)" % device_root
    import mxnet as mx

    try:
        count = int(mx.context.num_gpus())
    except Exception as exc:  # a CPU build, or a driver mxnet cannot talk to
        return 0, "mx.context.num_gpus() failed (%s: %s)" % (type(exc).__name__, exc)
    if count == 0:
        return 0, "mxnet %s sees no GPU (a CPU build, or no driver)" % mx.__version__
    return count, "%d CUDA device(s); mxnet %s" % (count, mx.__version__)


def cuda_probe(check: CudaCheck) -> ProbeResult:
    count, reason = check()
    if count > 0:
        return ProbeResult("cuda", True, reason, count=count)
    return ProbeResult("cuda", False, reason)
