"""The TensorFlow runtime: which accelerators TensorFlow can use here, and a session on one."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from eikit.accelerators import Probe, ProbeResult
from eikit.errors import ConfigurationError
from eikit.runtime import ModelSession, Runtime
from eikit_tensorflow import tfs_config
from eikit_tensorflow.probes import CudaCheck, cuda_probe, eia_probe, find_ei_binary, tf_cuda_check

if TYPE_CHECKING:
    from eikit.settings import Settings


class TensorFlowRuntime(Runtime):
    name = "tensorflow"
    framework_module = "tensorflow"
    # AWS's container (serve.py): "loading modules in code/lib, ignoring requirements.txt".
    lib_replaces_requirements = True
    install_hint = (
        "pip install 'eikit[tensorflow]' (tensorflow-cpu); for EI, AWS's EI build of TF "
        "Serving (amazonei_tensorflow_model_server)"
    )

    def __init__(self, cuda_check: Optional[CudaCheck] = None) -> None:
        # The seam for tests: a () -> (count, reason) callable replacing the real check.
        self.cuda_check = cuda_check

    def probes(self, settings: Settings) -> Dict[str, Probe]:
        present = settings.accelerator_present
        check = self.cuda_check or functools.partial(tf_cuda_check, settings.device_root)
        return {
            "eia": lambda: eia_probe(present, functools.partial(find_ei_binary, settings)),
            "cuda": lambda: cuda_probe(check),
        }

    def threads(self, accelerator: ProbeResult, settings: Settings) -> int:
        """TensorFlow threads per worker: EIKIT_WORKER_THREADS, else the cores shared by
        the workers."""
        if settings.worker_threads:
            return settings.worker_threads
        workers = settings.workers or self.default_workers(accelerator, settings)
        return max(1, (os.cpu_count() or 1) // max(1, workers))

    def default_workers(self, accelerator: ProbeResult, settings: Optional[Settings] = None) -> int:
        """On the TF Serving binary path, one worker per binary: SAGEMAKER_TFS_INSTANCE_COUNT
        when set (``serving.default_workers``); else the usual count."""
        if settings is not None:
            from eikit_tensorflow import serving

            if serving.find_binary(settings) is not None:
                return serving.default_workers(settings, accelerator)
        return super().default_workers(accelerator)

    def worker_numbers(self, settings: Settings) -> Optional[int]:
        """On the TF Serving binary path with SAGEMAKER_SAFE_PORT_RANGE, worker n takes the
        range's ports low+2n and low+2n+1 (``tfs_process.ports``): that many workers fit."""
        if not settings.safe_port_range:
            return None
        from eikit_tensorflow import serving

        try:
            binary = serving.find_binary(settings)
        except ConfigurationError:
            return None  # the workers report it, with the model's load
        if binary is None:
            return None
        from eikit_tensorflow.tfs_process import port_pairs

        return port_pairs(settings.safe_port_range)

    def session(self, accelerator: ProbeResult, settings: Settings, worker: int) -> ModelSession:
        from eikit_tensorflow.session import TensorFlowSession

        kind = accelerator.kind
        threads = self.threads(accelerator, settings)
        if kind == "cpu":
            device = "/CPU:0"
        elif kind == "cuda":
            device = "/GPU:%d" % (worker % max(1, accelerator.count))
        elif kind == "eia":
            device = "/CPU:0"  # EI is reached through the TF Serving binary; Python stays on CPU
        else:
            raise ConfigurationError("the tensorflow runtime cannot use accelerator %r" % kind)
        return TensorFlowSession(accelerator, device, settings, worker, threads)

    def execution(self, settings: Settings, accelerator: ProbeResult) -> Dict[str, str]:
        """For ``eikit detect``: which execution path a worker takes first, and why."""
        from eikit_tensorflow.session import execution_path

        path, why = execution_path(settings)
        return {"execution": path, "execution_reason": why}

    def batching(self, settings: Settings) -> Tuple[int, float]:
        """``SAGEMAKER_TS_BATCH_SIZE`` when set above 1; else, with TensorFlow in the worker,
        AWS's TF Serving batching settings drive eikit's batching (a TF Serving binary batches
        by itself with them, so the frontend does not batch for it too)."""
        if settings.ts_batch_size > 1 or not settings.tfs_enable_batching:
            return super().batching(settings)
        from eikit_tensorflow.session import execution_path

        if execution_path(settings)[0] != "in-process":
            return 1, 0.0
        size = settings.tfs_max_batch_size or tfs_config.DEFAULT_MAX_BATCH_SIZE
        micros = settings.tfs_batch_timeout_micros
        if micros is None:
            micros = tfs_config.DEFAULT_BATCH_TIMEOUT_MICROS
        return size, micros / 1e6
