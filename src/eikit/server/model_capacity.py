"""A multi-model endpoint's capacity as ``eviction.plan`` sees it: the caps on what the models
may hold, what each loaded model holds (measured), and what one about to load will hold
(estimated from what was measured before)."""

from __future__ import annotations

import logging
import statistics
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

from eikit.errors import InsufficientMemory
from eikit.procs import available_bytes
from eikit.server import eviction, model_resources
from eikit.server.model_state import Model
from eikit.server.slots import FreeList
from eikit.settings import Settings

log = logging.getLogger("eikit.server.models")

MB = model_resources.MB
REMEMBERED_SIZES = 10000  # measured sizes kept for models unloaded since (estimates)


def zero() -> Dict[str, int]:
    return dict.fromkeys(eviction.RESOURCES, 0)


class Capacity:
    def __init__(
        self, settings: Settings, workers: int, worker_numbers: Optional[int], gpu: bool
    ) -> None:
        """``workers``: per model; ``worker_numbers``: how many the runtime can number at
        once (TF Serving's ports), None for no limit; ``gpu``: models run on CUDA."""
        self.settings = settings
        self.workers = workers
        self.max_models = settings.max_models
        self.memory_cap = model_resources.memory_cap(settings)
        self.gpu = gpu
        self.gpu_cap: Optional[int] = None  # read with the first measurement
        self.worker_budget = model_resources.worker_budget(settings)
        self.slots = FreeList(None if worker_numbers is None else worker_numbers // workers)
        self.sizes: OrderedDict[str, Tuple[int, int]] = OrderedDict()  # (host, GPU) bytes
        log.info(
            "multi-model endpoint: %d worker(s) per model, memory for models %s, at most %s, "
            "%s worker slots, room for %s workers",
            workers,
            "%.0f MiB" % (self.memory_cap / MB) if self.memory_cap else "unlimited",
            "%d models" % self.max_models if self.max_models else "any number of models",
            self.slots.capacity if self.slots.capacity is not None else "unlimited",
            self.worker_budget if self.worker_budget is not None else "any number of",
        )

    # --- measured and expected sizes ---------------------------------------------

    def knows_sizes(self, models: Iterable[Model]) -> bool:
        """Whether a model was ever measured (else the first estimate reads the files)."""
        return bool(self.sizes) or any(model.memory for model in models)

    def estimate(self, name: str, files: int, models: Iterable[Model]) -> Dict[str, int]:
        """What a model about to load will hold: its own last measurement, else the median
        of the models measured here, else its files' size (the first model)."""
        if name in self.sizes:
            host, gpu = self.sizes[name]
        else:
            measured = [(m.memory, m.gpu_memory) for m in models if m.memory]
            measured = measured or list(self.sizes.values())
            if measured:
                host = int(statistics.median(size[0] for size in measured))
                gpu = int(statistics.median(size[1] for size in measured))
            else:
                host, gpu = files * self.workers, 0
        need = zero()
        need.update(
            {
                eviction.MODELS: 1,
                eviction.SLOTS: 1,
                eviction.WORKERS: self.workers,
                eviction.MEMORY: host,
                eviction.FREE: host,
                eviction.GPU: gpu,
            }
        )
        return need

    def remember(self, model: Model) -> None:
        self.sizes[model.name] = (model.memory, model.gpu_memory)
        self.sizes.move_to_end(model.name)
        while len(self.sizes) > REMEMBERED_SIZES:
            self.sizes.popitem(last=False)

    def measure(self, groups: List[List[int]]) -> List[Tuple[int, int]]:
        """(host, GPU) bytes of each group of worker pids. Blocking: call in a thread."""
        if self.gpu and self.gpu_cap is None:
            self.gpu_cap = model_resources.gpu_cap(self.settings)
        return model_resources.measure(groups, self.gpu)

    # --- the plan ---------------------------------------------------------------

    @staticmethod
    def resident(model: Model, keep: Optional[Model]) -> eviction.Resident:
        holds = {
            eviction.MODELS: 1,
            eviction.SLOTS: 1,
            eviction.WORKERS: model.pool.count,
            eviction.MEMORY: model.memory or model.reserved.get(eviction.MEMORY, 0),
            eviction.GPU: model.gpu_memory or model.reserved.get(eviction.GPU, 0),
        }
        holds[eviction.FREE] = holds[eviction.MEMORY]
        evictable = model is not keep and model.evictable
        return eviction.Resident(model.name, model.last_used, evictable, holds)

    def caps(self, residents: List[eviction.Resident]) -> Dict[str, Optional[int]]:
        available = available_bytes(self.settings.cgroup_root)
        held = eviction.used(residents).get(eviction.MEMORY, 0)
        return {
            eviction.MODELS: self.max_models,
            eviction.SLOTS: self.slots.capacity,
            eviction.WORKERS: self.worker_budget,
            eviction.MEMORY: self.memory_cap,
            eviction.FREE: None if available is None else held + available,
            eviction.GPU: self.gpu_cap,
        }

    def next_victim(
        self, models: Iterable[Model], need: Dict[str, int], purpose: str, keep: Optional[Model]
    ) -> Optional[Tuple[str, str]]:
        """The model to unload next so that ``need`` fits, and why; None when it fits.
        InsufficientMemory (507) when only busy models could make room."""
        residents = [self.resident(model, keep) for model in models]
        caps = self.caps(residents)
        plan = eviction.plan(residents, need, caps)
        totals = eviction.used(residents)
        if plan.blocked is not None:
            others = sum(1 for model in residents if keep is None or model.name != keep.name)
            raise InsufficientMemory(
                "no room to %s: %s, and none of the %d other model(s) that hold it is idle"
                % (purpose, eviction.explain(plan.blocked, totals, need, caps), others)
            )
        if not plan.victims:
            return None
        assert plan.over is not None
        return plan.victims[0], eviction.explain(plan.over, totals, need, caps)
