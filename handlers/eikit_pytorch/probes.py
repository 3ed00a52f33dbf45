"""Probes for the accelerators PyTorch can use: EI, Neuron, CUDA (CPU comes from the core).

Each returns available, or the precise reason it is not. Decisions worth knowing:

- EI needs SageMaker's signal (``SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true``) first; the
  EI build is only looked for when the signal is set. ``torcheia`` (the plugin for torch
  1.5.1) is really imported, so a broken install is reported here rather than at load.
  The older EI build replaces torch itself and is installed as the distribution
  ``torch_eia`` (its wheel is ``torch_eia-1.3.1-...whl``) while the module stays ``torch``,
  so it is recognised by that distribution's metadata, or by "eia" in ``torch.__version__``.
- Neuron needs ``/dev/neuron*`` nodes and the package of their generation: ``torch_neuron``
  on Inf1 (NeuronCore v1), ``torch_neuronx`` on Inf2/Trn1 (v2); ``eikit.neuron.host`` finds
  the generation and the cores. The package is only located here (``find_spec``), not
  imported: importing it pulls in the Neuron runtime (and torch_xla for ``torch_neuronx``)
  in the serving process. The session imports it before any model loads, and a failure
  there falls back.
- CUDA goes through a ``CudaCheck`` callable, the seam tests replace. The default first
  looks for NVIDIA device nodes (``nvidia0``, ...) under the device root and, only when
  there are some, imports torch and asks ``torch.cuda.is_available()`` and
  ``torch.cuda.device_count()``. So on a CPU host the probes never import torch in the
  serving frontend. ``is_available()`` initialises the CUDA driver in the calling process
  (unless ``PYTORCH_NVML_BASED_CUDA_CHECK=1``): workers must be spawned, not forked.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Callable, Optional, Tuple

from eikit.accelerators import (
    ProbeResult,
    distribution_version,
    ei_signal_reason,
    module_installed,
    nvidia_device_nodes,
)
from eikit.neuron.facts import GENERATIONS
from eikit.neuron.host import SYSFS_ROOT, NeuronLs, discover, run_neuron_ls

# (device count, reason): count 0 means unavailable and the reason says why.
CudaCheck = Callable[[], Tuple[int, str]]

NEURON_PACKAGES = tuple(gen.module for gen in reversed(list(GENERATIONS.values())))


def _torcheia() -> Tuple[Optional[str], str]:
    """('torcheia', description) when the plugin imports, else (None, why not)."""
    if not module_installed("torcheia"):
        return None, "torcheia is not installed"
    try:
        module = importlib.import_module("torcheia")
    except Exception as exc:  # a plugin built for another torch fails in many ways
        return None, "torcheia is installed but does not import (%s: %s)" % (
            type(exc).__name__,
            exc,
        )
    version = distribution_version("torcheia") or getattr(module, "__version__", "?")
    return "torcheia", "torcheia %s" % version


def _torch_eia() -> Tuple[Optional[str], str]:
    """('torch_eia', description) when torch is AWS's EI build (1.3.1), else (None, why not)."""
    version = distribution_version("torch_eia")
    if version is not None:
        return "torch_eia", "torch_eia %s" % version
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if "eia" in str(torch.__version__).lower():
        return "torch_eia", "EI-enabled torch %s" % torch.__version__
    return None, "torch %s is not the torch_eia build" % torch.__version__


def eia_probe(accelerator_present: bool) -> ProbeResult:
    missing_signal = ei_signal_reason(accelerator_present)
    if missing_signal is not None:
        return ProbeResult("eia", False, missing_signal)
    reasons = []
    for find in (_torcheia, _torch_eia):
        api, text = find()
        if api is not None:
            return ProbeResult(
                "eia",
                True,
                "EI accelerator attached (SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true); %s" % text,
                count=1,
                detail={"api": api},
            )
        reasons.append(text)
    return ProbeResult(
        "eia",
        False,
        "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true but torch cannot use EI: %s"
        % "; ".join(reasons),
    )


def neuron_probe(
    device_root: Path,
    sysfs_root: Path = SYSFS_ROOT,
    visible: Optional[str] = None,
    neuron_ls: Optional[NeuronLs] = run_neuron_ls,
) -> ProbeResult:
    """Neuron devices, their generation and cores, and the package for that generation.

    ``count`` is the number of NeuronCores workers may use (one worker each); ``detail``
    holds the package, the generation, the device names and the core ids."""
    host = discover(device_root, sysfs_root, neuron_ls, visible)
    installed = [name for name in NEURON_PACKAGES if module_installed(name)]
    if not host.devices:
        if installed:
            reason = "no Neuron devices (%s/neuron*) although %s is installed" % (
                device_root,
                installed[0],
            )
        else:
            reason = "no Neuron devices (%s/neuron*) and no torch_neuronx or torch_neuron" % (
                device_root
            )
        return ProbeResult("neuron", False, reason)
    wanted = [GENERATIONS[host.generation].module] if host.generation else list(NEURON_PACKAGES)
    package = next((name for name in wanted if name in installed), None)
    where = "%d Neuron device(s) under %s" % (len(host.devices), device_root)
    if host.generation:
        where += " (%s: %s, NeuronCore %s)" % (
            host.hardware,
            host.generation,
            GENERATIONS[host.generation].neuron_core,
        )
    if package is None:
        if installed:
            return ProbeResult(
                "neuron",
                False,
                "%s, but %s is installed and this generation needs %s: use the eikit %s image"
                % (where, installed[0], wanted[0], host.generation),
            )
        return ProbeResult(
            "neuron",
            False,
            "%s but neither torch_neuronx nor torch_neuron is installed" % where,
        )
    generation = host.generation or next(
        name for name, gen in GENERATIONS.items() if gen.module == package
    )
    detail = host.to_dict()
    detail.update({"package": package, "generation": generation})
    return ProbeResult(
        "neuron",
        True,
        "%s; %d NeuronCore(s) for workers (%s); %s installed"
        % (where, len(host.visible), host.source, package),
        count=len(host.visible),
        detail=detail,
    )


def torch_cuda_check(device_root: Path = Path("/dev")) -> Tuple[int, str]:
    """The real CUDA check: device nodes, then torch.cuda.is_available() and device_count()."""
    if not nvidia_device_nodes(device_root):
        return 0, "no NVIDIA devices (%s/nvidia[0-9]*)" % device_root
    import torch

    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return 0, "torch %s is built without CUDA" % torch.__version__
        return 0, "torch.cuda.is_available() is False (no GPU visible, or no driver)"
    count = torch.cuda.device_count()
    return count, "%d CUDA device(s); torch %s, CUDA %s" % (
        count,
        torch.__version__,
        torch.version.cuda,
    )


def cuda_probe(check: CudaCheck) -> ProbeResult:
    count, reason = check()
    if count > 0:
        return ProbeResult("cuda", True, reason, count=count)
    return ProbeResult("cuda", False, reason)
