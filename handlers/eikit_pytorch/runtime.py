"""The PyTorch runtime: which accelerators torch can use here, and a session on one."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from eikit.accelerators import Probe, ProbeResult
from eikit.errors import ConfigurationError
from eikit.neuron.host import pinning
from eikit.runtime import ModelSession, Runtime
from eikit_pytorch.probes import CudaCheck, cuda_probe, eia_probe, neuron_probe, torch_cuda_check

if TYPE_CHECKING:
    from eikit.settings import Settings


class PyTorchRuntime(Runtime):
    name = "pytorch"
    framework_module = "torch"
    install_hint = (
        "pip install 'eikit[pytorch]' (torch); for EI, torch 1.5.1 with torcheia; "
        "for Neuron, the eikit inf1 image (torch-neuron) or inf2 image (torch-neuronx)"
    )

    def __init__(self, cuda_check: Optional[CudaCheck] = None) -> None:
        # The seam for tests: a () -> (count, reason) callable replacing the real check.
        self.cuda_check = cuda_check

    def probes(self, settings: Settings) -> Dict[str, Probe]:
        present = settings.accelerator_present
        device_root = settings.device_root
        check = self.cuda_check or functools.partial(torch_cuda_check, device_root)
        return {
            "eia": lambda: eia_probe(present),
            "neuron": lambda: neuron_probe(
                device_root, settings.neuron_sysfs_root, settings.neuron_visible_cores
            ),
            "cuda": lambda: cuda_probe(check),
        }

    def worker_pinning(
        self, accelerator: ProbeResult, settings: Settings, worker: int
    ) -> Dict[str, str]:
        """On Neuron, worker ``worker`` owns one NeuronCore of those the probe found."""
        if accelerator.kind != "neuron":
            return {}
        return pinning(list(accelerator.detail.get("cores") or [0]), worker)

    def fork_preload(self, accelerator: ProbeResult) -> Optional[Tuple[str, ...]]:
        """CPU: ``import torch`` starts none of torch's thread pools (they start lazily,
        sized by ``torch.set_num_threads`` in each worker). numpy's OpenBLAS starts its
        threads at import but stops them before a fork (its ``pthread_atfork`` handler)
        and starts them again in the child. CUDA should fork as safely (``import torch``
        does not initialise CUDA; each worker would on its first use) but has not been run
        on a GPU here yet; it, Neuron and EI spawn their workers."""
        if accelerator.kind != "cpu":
            return None
        return ("numpy", "torch", "eikit.codecs", "eikit_pytorch.session")

    def threads(self, accelerator: ProbeResult, settings: Settings) -> int:
        """Torch threads per worker: EIKIT_WORKER_THREADS, else the cores shared by workers."""
        if settings.worker_threads:
            return settings.worker_threads
        workers = settings.workers or self.default_workers(accelerator)
        return max(1, (os.cpu_count() or 1) // max(1, workers))

    def session(self, accelerator: ProbeResult, settings: Settings, worker: int) -> ModelSession:
        # Here, not at the top: the frontend finds this runtime before it starts the first
        # worker, and the sessions' numpy import would add 80 ms to every start.
        from eikit_pytorch.session import (
            CudaSession,
            NeuronSession,
            TorchEiaLegacySession,
            TorchEiaSession,
            TorchSession,
        )

        threads = self.threads(accelerator, settings)
        kind = accelerator.kind
        if kind == "cpu":
            return TorchSession(accelerator, "cpu", threads)
        if kind == "cuda":
            device = "cuda:%d" % (worker % max(1, accelerator.count))
            return CudaSession(accelerator, device, threads)
        if kind == "neuron":
            return NeuronSession(accelerator, "neuron", threads, settings.split_batches)
        if kind == "eia":
            api = accelerator.detail.get("api")
            if api == "torcheia":
                return TorchEiaSession(accelerator, "eia:0", threads)
            if api == "torch_eia":
                return TorchEiaLegacySession(accelerator, "eia:0", threads)
            raise ConfigurationError("EI probe result names no known API: %r" % (api,))
        raise ConfigurationError("the pytorch runtime cannot use accelerator %r" % kind)
