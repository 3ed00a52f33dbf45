"""Worker slots for a multi-model endpoint: a free list of small numbers that unloads give back.

A model's workers are numbered from its slot (slot × workers per model, plus the worker's
index), and a runtime derives what a worker holds from its number: TF Serving's two ports
(``low + 2n`` in ``SAGEMAKER_SAFE_PORT_RANGE``), the GPU (``n % GPUs``), a NeuronCore. Taking
the lowest free slot keeps the numbers dense, so they never outgrow the port range however
many models come and go, and models spread evenly over the devices.
"""

from __future__ import annotations

import heapq
from typing import List, Optional, Set


class SlotsExhausted(Exception):
    """Every slot is taken."""


class FreeList:
    def __init__(self, capacity: Optional[int] = None) -> None:
        self.capacity = capacity  # None: no limit
        self._free: List[int] = []  # given back, below ``_next``
        self._next = 0  # every number from here up has never been taken
        self._taken: Set[int] = set()

    @property
    def in_use(self) -> int:
        return len(self._taken)

    def take(self) -> int:
        """The lowest free slot."""
        if self._free:
            slot = heapq.heappop(self._free)
        elif self.capacity is None or self._next < self.capacity:
            slot = self._next
            self._next += 1
        else:
            raise SlotsExhausted("all %d slots are taken" % self.capacity)
        self._taken.add(slot)
        return slot

    def give(self, slot: int) -> None:
        """Return ``slot``; giving back one not taken is a no-op (a double unload)."""
        if slot not in self._taken:
            return
        self._taken.remove(slot)
        heapq.heappush(self._free, slot)
