"""The MXNet runtime: which accelerators mxnet can use here, and a session on one."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Dict, Optional

from eikit.accelerators import Probe, ProbeResult
from eikit.errors import ConfigurationError
from eikit.runtime import ModelSession, Runtime
from eikit_mxnet.probes import CudaCheck, cuda_probe, eia_probe, mxnet_cuda_check

if TYPE_CHECKING:
    from eikit.settings import Settings


class MXNetRuntime(Runtime):
    name = "mxnet"
    framework_module = "mxnet"
    install_hint = (
        "pip install 'eikit[mxnet]' 'numpy<1.24' (mxnet 1.x); for EI, amazonei_mxnet or "
        "mxnet 1.7.0.post2 with eimx; for CUDA, mxnet-cu112"
    )

    def __init__(self, cuda_check: Optional[CudaCheck] = None) -> None:
        # The seam for tests: a () -> (count, reason) callable replacing the real check.
        self.cuda_check = cuda_check

    def probes(self, settings: Settings) -> Dict[str, Probe]:
        present = settings.accelerator_present
        check = self.cuda_check or functools.partial(mxnet_cuda_check, settings.device_root)
        return {"eia": lambda: eia_probe(present), "cuda": lambda: cuda_probe(check)}

    def threads(self, accelerator: ProbeResult, settings: Settings) -> int:
        """Threads per worker: EIKIT_WORKER_THREADS, else the cores shared by workers."""
        if settings.worker_threads:
            return settings.worker_threads
        workers = settings.workers or self.default_workers(accelerator)
        return max(1, (os.cpu_count() or 1) // max(1, workers))

    def worker_environment(
        self, accelerator: ProbeResult, settings: Settings, worker: int
    ) -> Dict[str, str]:
        """MXNet reads its thread counts from the environment when it is imported. OpenMP
        (what parallelises each operator) gets this worker's share of the cores; the
        engine runs one operator at a time (MXNet's default and AWS's setting), so that
        parallel operators do not each start a full set of OpenMP threads."""
        return {
            "OMP_NUM_THREADS": str(self.threads(accelerator, settings)),
            "MXNET_CPU_WORKER_NTHREADS": "1",
            "MXNET_CPU_PRIORITY_NTHREADS": "1",
            "MXNET_KVSTORE_REDUCTION_NTHREADS": "1",
        }

    def session(self, accelerator: ProbeResult, settings: Settings, worker: int) -> ModelSession:
        from eikit_mxnet.session import CudaSession, EiaSession, MXNetSession

        kind = accelerator.kind
        if kind == "cpu":
            return MXNetSession(accelerator, "cpu")
        if kind == "cuda":
            return CudaSession(accelerator, "cuda:%d" % (worker % max(1, accelerator.count)))
        if kind == "eia":
            return EiaSession(accelerator, "eia:0")
        raise ConfigurationError("the mxnet runtime cannot use accelerator %r" % kind)
