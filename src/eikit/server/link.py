"""The frontend's end of one worker process: its socket, its queue of sent requests."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Protocol, Tuple

from eikit.server import protocol
from eikit.server.handles import WorkerHandle


class Retry(Exception):
    """The request was queued on a worker that went away before starting it: resend."""


class WorkerEvents(Protocol):
    """What a worker's link tells its owner (eikit.server.pool.WorkerPool)."""

    def release(self, worker: Worker) -> None:
        """``worker`` answered a request: it has a free slot."""

    def on_ready(self, worker: Worker) -> None:
        """``worker`` loaded its model."""

    def on_failed(self, worker: Worker, message: str, code: Optional[str]) -> None:
        """``worker`` could not load its model, and said why."""

    def on_exit(self, worker: Worker) -> None:
        """``worker``'s connection closed: the process ended or is ending."""


class Worker(asyncio.Protocol):
    def __init__(self, pool: WorkerEvents, index: int, process: WorkerHandle) -> None:
        self.pool = pool
        self.index = index
        self.process = process
        self.transport: Optional[asyncio.Transport] = None
        self.frames = protocol.FrameBuffer()
        self.inflight: Deque[asyncio.Future] = deque()
        # How many of ``inflight`` each frame sent carried (1 for a REQUEST, n for a BATCH):
        # a batch runs as one, so its requests start, time out and die together.
        self.batches: Deque[int] = deque()
        self.promised = 0  # slots handed to waiting requests that have not sent yet
        self.head_started = 0.0  # when the request at the head of ``inflight`` began
        self.head_undelivered = False  # its write failed: the worker was already gone
        self.spawned_at = time.monotonic()
        self.ready = False
        self.was_ready = False
        self.failure: Optional[str] = None  # why it ended before serving, when known
        self.timed_out = False  # killed by the pool for a prediction past the timeout
        self.info: Dict[str, Any] = {}

    @property
    def load(self) -> int:
        return len(self.inflight) + self.promised

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for kind, _request_id, meta, body in self.frames.feed(data):
            if kind == protocol.RESPONSE:
                future = self.inflight.popleft()
                if self.batches[0] == 1:
                    self.batches.popleft()
                    self.head_started = time.monotonic()
                else:
                    self.batches[0] -= 1
                if not future.done():
                    future.set_result((meta, body))
                self.pool.release(self)
            elif kind == protocol.READY:
                self.info = control_json(meta)
                self.pool.on_ready(self)
            elif kind == protocol.FAILED:
                failure = control_json(meta)
                message = failure.get("message", "unknown error")
                self.pool.on_failed(self, message, failure.get("code"))

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.pool.on_exit(self)

    # frontend side
    def send(self, kind: int, meta: bytes, body: protocol.Body = b"") -> None:
        assert self.transport is not None
        if isinstance(body, protocol.Pieces):
            self.transport.writelines([protocol.head(kind, 0, meta, body.nbytes), *body])
            return
        start = protocol.head(kind, 0, meta, len(body))
        if len(body) > protocol.COPY_LIMIT:
            self.transport.writelines((start, body))
        else:
            self.transport.write(start + body)

    def send_request(self, future: asyncio.Future, meta: bytes, body: protocol.Body) -> None:
        """Queue a request on this worker. A write that fails (EPIPE: the worker exited and
        the frontend has not yet read its EOF) closes the transport at once; a request that
        would have been the worker's next one then never reached it and is resent."""
        head = not self.inflight
        if head:
            self.head_started = time.monotonic()
        self.inflight.append(future)
        self.batches.append(1)
        self.send(protocol.REQUEST, meta, body)
        if head and self.transport is not None and self.transport.is_closing():
            self.head_undelivered = True

    def send_batch(self, items: List[Tuple[asyncio.Future, bytes, protocol.Body]]) -> None:
        """Queue (future, meta, body) requests on this worker as one batch."""
        assert self.transport is not None
        head = not self.inflight
        if head:
            self.head_started = time.monotonic()
        self.inflight.extend(future for future, _, _ in items)
        self.batches.append(len(items))
        self.transport.writelines(protocol.batch_frame([(meta, body) for _, meta, body in items]))
        if head and self.transport.is_closing():
            self.head_undelivered = True

    def kill(self) -> None:
        self.process.kill()
        if self.transport is not None:
            self.transport.close()

    def abandon(self, head_error: Exception) -> None:
        """Fail the running request (every request of the running batch) with
        ``head_error``; the queued ones are resent, and so is the head when it never reached
        the worker."""
        running = 0 if self.head_undelivered or not self.batches else self.batches[0]
        for position, future in enumerate(self.inflight):
            if not future.done():
                future.set_exception(head_error if position < running else Retry())
        self.inflight.clear()
        self.batches.clear()


def control_json(meta: bytes) -> Dict[str, Any]:
    try:
        value = json.loads(meta) if meta else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
