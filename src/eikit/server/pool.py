"""Worker processes as seen from the frontend: spawn, hand out, time out, replace.

Each worker holds one request at a time. Requests wait in a bounded queue for an idle
worker; the hand-off happens in ``data_received`` so a freed worker goes straight to the
next waiter. Nothing here blocks the event loop, so ``/ping`` always answers at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from eikit.accelerators import ProbeResult
from eikit.errors import InternalError, ModelNotReady, PredictionTimeout
from eikit.server import protocol
from eikit.settings import Settings

log = logging.getLogger(__name__)

Reply = Tuple[List[Any], bytes]


class Worker(asyncio.Protocol):
    def __init__(self, pool: WorkerPool, index: int, process: subprocess.Popen) -> None:
        self.pool = pool
        self.index = index
        self.process = process
        self.transport: Optional[asyncio.Transport] = None
        self.frames = protocol.FrameBuffer()
        self.pending: Optional[asyncio.Future] = None
        self.ready = False
        self.was_ready = False
        self.info: Dict[str, Any] = {}

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for kind, _request_id, meta, body in self.frames.feed(data):
            if kind == protocol.RESPONSE:
                future, self.pending = self.pending, None
                if future is not None and not future.done():
                    future.set_result((meta, body))
                self.pool.release(self)
            elif kind == protocol.READY:
                self.info = meta or {}
                self.pool.on_ready(self)
            elif kind == protocol.FAILED:
                self.pool.on_failed(self, (meta or {}).get("message", "unknown error"))

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.pool.on_exit(self)

    # frontend side
    def send(self, kind: int, meta: Any, body: bytes = b"") -> None:
        assert self.transport is not None
        head = protocol.pack_head(kind, 0, meta, len(body))
        if len(body) > protocol.COPY_LIMIT:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head + body)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        if self.transport is not None:
            self.transport.close()


class WorkerPool:
    def __init__(
        self, settings: Settings, runtime_name: str, chain: List[ProbeResult], count: int
    ) -> None:
        self.settings = settings
        self.runtime_name = runtime_name
        self.chain = chain
        self.count = count
        self.workers: Dict[int, Worker] = {}
        self.idle: Deque[Worker] = deque()
        self.waiters: Deque[asyncio.Future] = deque()
        self.failed_reason: Optional[str] = None
        self.stopping = False
        self.loaded = asyncio.Event()
        self.started_at = time.monotonic()
        self._crashes: Dict[int, int] = {}

    # --- state ---------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Every worker holds a loaded model and none is restarting."""
        if self.failed_reason is not None or len(self.workers) < self.count:
            return False
        return all(worker.ready for worker in self.workers.values())

    def describe(self) -> Dict[str, Any]:
        return {
            "workers": self.count,
            "ready": sum(1 for w in self.workers.values() if w.ready),
            "failed": self.failed_reason,
        }

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
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
        process = subprocess.Popen(
            [sys.executable, "-m", "eikit.server.worker", str(child.fileno())],
            pass_fds=(child.fileno(),),
            close_fds=True,
        )
        child.close()
        loop = asyncio.get_running_loop()
        _, worker = await loop.create_connection(lambda: Worker(self, index, process), sock=parent)
        self.workers[index] = worker
        worker.send(
            protocol.INIT,
            {
                "settings": self.settings.model_dump(mode="json", by_alias=True),
                "runtime": self.runtime_name,
                "chain": [result.to_dict() for result in self.chain],
                "index": index,
            },
        )
        log.debug("worker %d started (pid %d)", index, process.pid)

    def on_ready(self, worker: Worker) -> None:
        worker.ready = worker.was_ready = True
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
        self._fail_waiters(ModelNotReady("model failed to load: %s" % reason))

    def on_exit(self, worker: Worker) -> None:
        """The worker's socket closed: it exited, crashed, or was killed."""
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        worker.ready = False
        if worker in self.idle:
            self.idle.remove(worker)
        if worker.pending is not None and not worker.pending.done():
            worker.pending.set_exception(InternalError("the worker died while predicting"))
        asyncio.get_running_loop().run_in_executor(None, worker.process.wait)
        if self.stopping or self.failed_reason is not None:
            return
        if not worker.was_ready:
            self.fail(
                "worker %d exited during load (code %s)" % (worker.index, worker.process.poll())
            )
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

    async def submit(self, meta: List[Any], body: bytes) -> Reply:
        worker = self.idle.popleft() if self.idle else await self._wait_for_worker()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        worker.pending = future
        worker.send(protocol.REQUEST, meta, body)
        timer = loop.call_later(self.settings.model_server_timeout, self._timed_out, worker, future)
        try:
            return await future
        finally:
            timer.cancel()

    async def _wait_for_worker(self) -> Worker:
        if self.failed_reason is not None:
            raise ModelNotReady("model failed to load: %s" % self.failed_reason)
        if not self.loaded.is_set():
            raise ModelNotReady("model is still loading")
        if len(self.waiters) >= self.settings.max_queue:
            raise ModelNotReady(
                "too many requests waiting (EIKIT_MAX_QUEUE=%d)" % self.settings.max_queue
            )
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.waiters.append(waiter)
        timer = loop.call_later(self.settings.model_server_timeout, self._expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def release(self, worker: Worker) -> None:
        if not worker.ready or worker.pending is not None:
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self.idle.append(worker)

    def _expire(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(
                ModelNotReady(
                    "no worker became free within SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs"
                    % self.settings.model_server_timeout
                )
            )

    def _timed_out(self, worker: Worker, future: asyncio.Future) -> None:
        if future.done():
            return
        future.set_exception(
            PredictionTimeout(
                "prediction took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs"
                % self.settings.model_server_timeout
            )
        )
        log.error("worker %d timed out (pid %d); replacing it", worker.index, worker.process.pid)
        worker.pending = None
        worker.ready = False
        worker.kill()

    def _fail_waiters(self, error: Exception) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
