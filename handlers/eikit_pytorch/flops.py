"""What ``eikit advise`` measures in-process for a PyTorch model: FLOPs, parameter bytes and
the time of one forward pass on one CPU thread.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (torch 2.1 and later; it counts
matrix multiplications and convolutions, which dominate most models, and TorchScript
models too). The model is the one the default ``model_fn`` loads (TorchScript); a model that
needs the user's ``model_fn`` is not profiled (None).
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)

TIMED_RUNS = 5


def profile_model(model_dir: Path, example: Any) -> Optional[Dict[str, float]]:
    import torch

    from eikit.errors import ConfigurationError
    from eikit_pytorch.loading import find_model_file, load_torchscript

    try:
        model = load_torchscript(find_model_file(Path(model_dir)), "cpu")
    except ConfigurationError as exc:
        log.info("not profiled: %s", exc)
        return None
    model.eval()
    inputs = torch.from_numpy(example)
    parameters = list(model.parameters()) + list(model.buffers())
    result: Dict[str, float] = {
        "parameter_bytes": float(sum(p.numel() * p.element_size() for p in parameters))
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one eikit worker with EIKIT_WORKER_THREADS=1 runs it
    try:
        with torch.inference_mode():
            try:
                model(inputs)  # the first call compiles TorchScript: not timed
            except Exception as exc:  # the model wants another input than the example gives
                log.info("not profiled: the model does not take the example: %s", exc)
                return None
            times = []
            for _ in range(TIMED_RUNS):
                start = time.perf_counter()
                model(inputs)
                times.append(time.perf_counter() - start)
            result["forward_ms"] = statistics.median(times) * 1000.0
            try:
                from torch.utils.flop_counter import FlopCounterMode
            except ImportError:  # torch before 2.1
                return result
            counter = FlopCounterMode(display=False)
            with counter:
                model(inputs)
            result["flops"] = float(counter.get_total_flops())
    finally:
        torch.set_num_threads(threads)
    return result
