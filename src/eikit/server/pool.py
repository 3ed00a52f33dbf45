"""Worker processes as seen from the frontend: spawn, dispatch, time out, replace.

Each worker runs one request at a time, in order. The frontend keeps up to
``EIKIT_WORKER_QUEUE`` requests sent to a worker, so a worker that finishes one finds the
next already in its socket instead of waiting a round trip for it (measured here: going
from 2 to 4 took the tiny MLP from about 6,800 to about 9,000 requests/s, with less CPU per
request on both sides); beyond that, requests wait in the frontend's bounded queue. One
watchdog timer, not one per request, enforces the timeouts. Nothing here blocks the event
loop, so ``/ping`` always answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from eikit.accelerators import ProbeResult
from eikit.errors import InternalError, ModelLoadFailed, ModelNotReady, PredictionTimeout
from eikit.server import protocol
from eikit.settings import Settings

log = logging.getLogger(__name__)

Reply = Tuple[bytes, bytes]  # response meta, body

SOCKET_BUFFER = 4 * 1024 * 1024


class Retry(Exception):
    """The request was queued on a worker that went away before starting it: resend."""


class Worker(asyncio.Protocol):
    def __init__(self, pool: WorkerPool, index: int, process: subprocess.Popen) -> None:
        self.pool = pool
        self.index = index
        self.process = process
        self.transport: Optional[asyncio.Transport] = None
        self.frames = protocol.FrameBuffer()
        self.inflight: Deque[asyncio.Future] = deque()
        self.promised = 0  # slots handed to waiting requests that have not sent yet
        self.head_started = 0.0  # when the request at the head of ``inflight`` began
        self.ready = False
        self.was_ready = False
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
                self.head_started = time.monotonic()
                if not future.done():
                    future.set_result((meta, body))
                self.pool.release(self)
            elif kind == protocol.READY:
                self.info = protocol_json(meta)
                self.pool.on_ready(self)
            elif kind == protocol.FAILED:
                message = protocol_json(meta).get("message", "unknown error")
                self.pool.on_failed(self, message)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.pool.on_exit(self)

    # frontend side
    def send(self, kind: int, meta: bytes, body: bytes = b"") -> None:
        assert self.transport is not None
        start = protocol.head(kind, 0, meta, len(body))
        if len(body) > protocol.COPY_LIMIT:
            self.transport.writelines((start, body))
        else:
            self.transport.write(start + body)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        if self.transport is not None:
            self.transport.close()

    def abandon(self, head_error: Exception) -> None:
        """Fail the running request with ``head_error``; the queued ones are resent."""
        for position, future in enumerate(self.inflight):
            if not future.done():
                future.set_exception(head_error if position == 0 else Retry())
        self.inflight.clear()


def protocol_json(meta: bytes) -> Dict[str, Any]:
    import json

    try:
        value = json.loads(meta) if meta else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class WorkerPool:
    def __init__(
        self, settings: Settings, runtime_name: str, chain: List[ProbeResult], count: int
    ) -> None:
        self.settings = settings
        self.runtime_name = runtime_name
        self.chain = chain
        self.count = count
        self.timeout = settings.model_server_timeout
        self.depth = settings.worker_queue
        self.workers: Dict[int, Worker] = {}
        self.ready: List[Worker] = []
        self.waiters: Deque[Tuple[asyncio.Future, float]] = deque()
        self.failed_reason: Optional[str] = None
        self.stopping = False
        self.loaded = asyncio.Event()
        self.started_at = time.monotonic()
        self._crashes: Dict[int, int] = {}
        self._watchdog: Optional[asyncio.TimerHandle] = None

    # --- state ---------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Every worker holds a loaded model and none is being replaced."""
        return (
            self.failed_reason is None
            and len(self.workers) == self.count
            and len(self.ready) == self.count
        )

    def describe(self) -> Dict[str, Any]:
        return {"workers": self.count, "ready": len(self.ready), "failed": self.failed_reason}

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._schedule_watchdog()
        for index in range(self.count):
            await self._spawn(index)
        try:
            await asyncio.wait_for(self.loaded.wait(), self.settings.startup_timeout)
        except asyncio.TimeoutError:
            self.fail(
                "model not loaded within SAGEMAKER_STARTUP_TIMEOUT=%gs"
                % self.settings.startup_timeout
            )

    async def _spawn(self, index: int) -> None:
        parent, child = socket.socketpair()
        # Room for a whole large request in the socket, so the event loop hands it over in
        # one write instead of buffering (and copying) the rest. Capped by the kernel.
        for end in (parent, child):
            with contextlib.suppress(OSError):
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        process = subprocess.Popen(
            [sys.executable, "-m", "eikit.server.worker", str(child.fileno())],
            pass_fds=(child.fileno(),),
            close_fds=True,
        )
        child.close()
        loop = asyncio.get_running_loop()
        _, worker = await loop.create_connection(lambda: Worker(self, index, process), sock=parent)
        self.workers[index] = worker
        init = {
            "settings": self.settings.model_dump(mode="json", by_alias=True),
            "runtime": self.runtime_name,
            "chain": [result.to_dict() for result in self.chain],
            "index": index,
        }
        worker.send(protocol.INIT, protocol.control(init))
        log.debug("worker %d started (pid %d)", index, process.pid)

    def on_ready(self, worker: Worker) -> None:
        worker.ready = worker.was_ready = True
        self.ready.append(worker)
        self._crashes.pop(worker.index, None)
        if self.healthy and not self.loaded.is_set():
            self.loaded.set()
            log.info(
                "ready: %d worker(s), model on %s, %.1fs after start",
                self.count,
                worker.info.get("device", "?"),
                time.monotonic() - self.started_at,
            )
        elif self.loaded.is_set():
            log.info("worker %d replaced and ready", worker.index)
        self.release(worker)

    def on_failed(self, worker: Worker, message: str) -> None:
        self.fail("worker %d could not load the model: %s" % (worker.index, message))

    def fail(self, reason: str) -> None:
        """The model cannot be served: /ping stays 503 and waiting requests get 503."""
        if self.failed_reason is None:
            self.failed_reason = reason
            log.error("model load failed: %s", reason)
        self.loaded.set()
        for worker in list(self.workers.values()):
            worker.kill()
        self._fail_waiters(ModelLoadFailed("model failed to load: %s" % reason))

    def _retire(self, worker: Worker) -> None:
        worker.ready = False
        if worker in self.ready:
            self.ready.remove(worker)

    def on_exit(self, worker: Worker) -> None:
        """The worker's socket closed: it exited, crashed, or was killed."""
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        self._retire(worker)
        worker.abandon(InternalError("the worker died while predicting"))
        asyncio.get_running_loop().run_in_executor(None, worker.process.wait)
        if self.stopping or self.failed_reason is not None:
            return
        if not worker.was_ready:
            code = worker.process.poll()
            self.fail("worker %d exited during load (code %s)" % (worker.index, code))
            return
        crashes = self._crashes[worker.index] = self._crashes.get(worker.index, 0) + 1
        delay = min(0.1 * 2 ** (crashes - 1), 5.0)
        log.warning("worker %d exited; replacing it in %.1fs", worker.index, delay)
        asyncio.get_running_loop().call_later(delay, self._respawn, worker.index)

    def _respawn(self, index: int) -> None:
        if not self.stopping and self.failed_reason is None and index not in self.workers:
            asyncio.ensure_future(self._spawn(index))

    async def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._fail_waiters(ModelNotReady("server is shutting down"))
        workers = list(self.workers.values())
        for worker in workers:
            if worker.transport is not None:
                worker.transport.close()  # EOF: the worker exits after its current request
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        for worker in workers:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                await loop.run_in_executor(None, worker.process.wait, remaining)
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop; killing it", worker.index)
                worker.process.send_signal(signal.SIGKILL)
                await loop.run_in_executor(None, worker.process.wait)

    # --- requests ------------------------------------------------------------

    def _pick(self) -> Optional[Worker]:
        best = None
        for worker in self.ready:
            load = worker.load
            if load == 0:
                return worker
            if load < self.depth and (best is None or load < best.load):
                best = worker
        return best

    async def submit(self, meta: bytes, body: bytes) -> Reply:
        loop = asyncio.get_running_loop()
        while True:
            worker = self._pick()
            if worker is None:
                worker = await self._wait_for_worker()
                worker.promised -= 1
                if not worker.ready:
                    continue  # it went away while this request was being woken
            future = loop.create_future()
            if not worker.inflight:
                worker.head_started = time.monotonic()
            worker.inflight.append(future)
            worker.send(protocol.REQUEST, meta, body)
            try:
                return await future
            except Retry:
                continue

    async def _wait_for_worker(self) -> Worker:
        if self.failed_reason is not None:
            raise ModelLoadFailed("model failed to load: %s" % self.failed_reason)
        if not self.loaded.is_set():
            raise ModelNotReady("model is still loading")
        if len(self.waiters) >= self.settings.max_queue:
            raise ModelNotReady(
                "too many requests waiting (EIKIT_MAX_QUEUE=%d)" % self.settings.max_queue
            )
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append((waiter, time.monotonic()))
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled after a worker was promised to it: give the slot back.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                worker = waiter.result()
                worker.promised -= 1
                self.release(worker)
            raise

    def release(self, worker: Worker) -> None:
        """``worker`` has room again: hand it to the oldest waiting request."""
        while worker.ready and worker.load < self.depth and self.waiters:
            waiter, _ = self.waiters.popleft()
            if not waiter.done():
                worker.promised += 1
                waiter.set_result(worker)

    # --- the watchdog: prediction and queue timeouts -----------------------------

    def _schedule_watchdog(self) -> None:
        interval = min(0.25, self.timeout / 4)
        self._watchdog = asyncio.get_running_loop().call_later(interval, self._watch)

    def _watch(self) -> None:
        now = time.monotonic()
        for worker in list(self.ready):
            if worker.inflight and now - worker.head_started > self.timeout:
                self._timed_out(worker)
        while self.waiters and now - self.waiters[0][1] > self.timeout:
            waiter, _ = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(
                    ModelNotReady(
                        "no worker became free within SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs"
                        % self.timeout
                    )
                )
        if not self.stopping:
            self._schedule_watchdog()

    def _timed_out(self, worker: Worker) -> None:
        log.error("worker %d timed out (pid %d); replacing it", worker.index, worker.process.pid)
        self._retire(worker)
        worker.abandon(
            PredictionTimeout(
                "prediction took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs" % self.timeout
            )
        )
        worker.kill()

    def _fail_waiters(self, error: Exception) -> None:
        while self.waiters:
            waiter, _ = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
