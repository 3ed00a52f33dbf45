"""Dynamic batching in the frontend: requests wait here, and go to a worker as one batch.

A batch leaves for a worker with room (``BATCHES_AHEAD`` batches sent to it, not yet
answered) when ``size`` requests wait, or when the oldest has waited ``delay`` seconds,
whichever comes first: a request never waits longer than ``delay`` for its batch to fill
once a worker is free for it (waiting for a busy worker is queueing, as without batching).
While the workers are busy, requests gather by themselves, so under load batches are full
and leave at once. One timer, armed for the oldest request, covers the delay.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable, Deque, List, Optional, Tuple

from eikit.server import protocol
from eikit.server.link import Worker

# Batches a worker holds at once: the one it runs and one waiting in its socket, so it finds
# the next batch there when it finishes (as EIKIT_WORKER_QUEUE does for single requests).
BATCHES_AHEAD = 2

Item = Tuple[asyncio.Future, float, bytes, protocol.Body]  # future, queued at, meta, body


class Batcher:
    def __init__(
        self,
        size: int,
        delay: float,
        pick: Callable[[], Optional[Worker]],
        on_batch: Optional[Callable[[int], None]] = None,
    ) -> None:
        """``pick``: a ready worker with room for a batch, or None. ``on_batch``: told the
        size of each batch sent (the batch-size metric)."""
        self.size = size
        self.delay = delay
        self.pick = pick
        self.on_batch = on_batch
        self.pending: Deque[Item] = deque()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._due = 0.0  # when the armed timer fires (uvloop's handles cannot say)

    def add(self, future: asyncio.Future, meta: bytes, body: protocol.Body) -> None:
        self.pending.append((future, time.monotonic(), meta, body))
        self.dispatch()

    def dispatch(self) -> None:
        """Send every batch that is ready to a worker with room for it."""
        pending = self.pending
        while pending:
            while pending and pending[0][0].done():  # the client went away
                pending.popleft()
            if not pending:
                return
            if len(pending) < self.size:
                wait = pending[0][1] + self.delay - time.monotonic()
                if wait > 0:
                    self._arm(wait)
                    return
            worker = self.pick()
            if worker is None:
                return  # the pool calls again when a worker has room
            batch: List[Tuple[asyncio.Future, bytes, protocol.Body]] = []
            while pending and len(batch) < self.size:
                future, _, meta, body = pending.popleft()
                if not future.done():
                    batch.append((future, meta, body))
            if batch:
                worker.send_batch(batch)
                if self.on_batch is not None:
                    self.on_batch(len(batch))

    def _arm(self, wait: float) -> None:
        due = time.monotonic() + wait
        if self._timer is not None:
            if self._due <= due:
                return  # an earlier timer will look again
            self._timer.cancel()
        self._due = due
        self._timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.dispatch()

    def expire(self, oldest_allowed: float, error: Callable[[], Exception]) -> None:
        """Fail the requests queued before ``oldest_allowed`` (waited past the timeout)."""
        pending = self.pending
        while pending and pending[0][1] < oldest_allowed:
            future = pending.popleft()[0]
            if not future.done():
                future.set_exception(error())

    def fail_all(self, error: Exception) -> None:
        while self.pending:
            future = self.pending.popleft()[0]
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
