"""Worker processes as seen from the frontend: spawn, dispatch, time out, replace.

Each worker runs one request at a time, in order. The frontend keeps up to
``EIKIT_WORKER_QUEUE`` requests sent to a worker, so a worker that finishes one finds the
next already in its socket instead of waiting a round trip for it (measured here: going
from 2 to 4 took the tiny MLP from about 6,800 to about 9,000 requests/s, with less CPU per
request on both sides); beyond that, requests wait in the frontend's bounded queue. With
dynamic batching (``SAGEMAKER_TS_BATCH_SIZE`` above 1) requests wait in a ``Batcher``
instead and reach the workers as batches, which time out, fail and are resent as a single
request is. One watchdog timer, not one per request, enforces the timeouts. Nothing here
blocks the event loop, so ``/ping`` always answers at once.

Faults never become an outage once the model has loaded: a worker that exits is
replaced, and a replacement that cannot start, fails to load, exits or outlasts
``SAGEMAKER_STARTUP_TIMEOUT`` is retried with backoff while the other workers serve. Only
a first load that fails, or ``EIKIT_MAX_RELOAD_FAILURES`` failed loads in a row while no
worker serves, marks the model failed.
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
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from eikit.accelerators import ProbeResult
from eikit.errors import InternalError, ModelLoadFailed, ModelNotReady, PredictionTimeout
from eikit.server import protocol
from eikit.server.backoff import REPLACE_DELAY, ReplacementPolicy
from eikit.server.batcher import BATCHES_AHEAD, Batcher
from eikit.server.handles import SpawnedHandle, WorkerHandle
from eikit.server.link import Retry, Worker
from eikit.server.metrics import Metrics
from eikit.server.template import Template, TemplateUnavailable, shadowing
from eikit.settings import Settings

log = logging.getLogger(__name__)

Reply = Tuple[bytes, bytes]  # response meta, body

SOCKET_BUFFER = 4 * 1024 * 1024

REAP_WAIT = 5.0  # a worker whose socket closed gets this long to exit before SIGKILL

KILLED = "killed"  # ``failed_code`` of a first load whose worker was SIGKILLed (OOM killer?)


class WorkerPool:
    def __init__(
        self,
        settings: Settings,
        runtime_name: str,
        chain: List[ProbeResult],
        count: int,
        metrics: Optional[Metrics] = None,
        model_dir: Optional[Path] = None,
        packages: Optional[Path] = None,
        device_offset: int = 0,
        template: Optional[Template] = None,
        batching: Tuple[int, float] = (1, 0.0),
    ) -> None:
        """``model_dir``, ``packages`` and ``device_offset``: for one model of a multi-model
        endpoint, where it is, where its requirements went, and where its workers' device
        numbering starts (so models spread over several GPUs). ``template``: fork workers
        from it (``EIKIT_WORKER_START=fork``) rather than spawn them. ``batching``: the most
        requests in a batch and the most seconds one waits for its batch to fill
        (``Runtime.batching``); a batch of 1 sends requests one by one."""
        self.settings = settings
        self.template = template
        self._spawn_reason: Optional[str] = None  # why this pool spawns despite a template
        self.model_dir = model_dir
        self.packages = packages
        self.device_offset = device_offset
        self.metrics = metrics
        self.runtime_name = runtime_name
        self.chain = chain
        self.count = count
        self.timeout = settings.model_server_timeout
        self.depth = settings.worker_queue
        self.workers: Dict[int, Worker] = {}
        self.ready: List[Worker] = []
        self.waiters: Deque[Tuple[asyncio.Future, float]] = deque()
        self.failed_reason: Optional[str] = None
        self.failed_code: Optional[str] = None  # the error code of a failed first load
        self.last_error: Optional[str] = None  # the latest failed replacement, for /ping
        self.draining = False  # a stop signal arrived: serve what is here, replace nothing
        self.stopping = False
        self.loaded = asyncio.Event()
        self.started_at = time.monotonic()
        self.policy = ReplacementPolicy(settings.max_reload_failures)
        self._serving_since = 0.0  # when a worker became ready while none was
        self._timers: Dict[int, asyncio.TimerHandle] = {}
        self._watchdog: Optional[asyncio.TimerHandle] = None
        # Told when the pool's health may have changed (a worker became ready, left the
        # ready ones, or the pool failed): a multi-model endpoint's registry listens.
        self.on_health: Optional[Callable[[WorkerPool], None]] = None
        size, delay = batching
        self.batcher = (
            Batcher(size, delay, self._pick_for_batch, metrics.batch_sent if metrics else None)
            if size > 1
            else None
        )

    def _health_changed(self) -> None:
        if self.on_health is not None:
            self.on_health(self)

    # --- state ---------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """The endpoint serves (what ``/ping`` says): every worker loaded the model once, the
        model is not marked failed, and at least one worker is ready now. A worker being
        replaced does not take the endpoint out of service while another one serves."""
        return self.failed_reason is None and self.loaded.is_set() and bool(self.ready)

    def gauges(self) -> Dict[str, float]:
        """What /metrics reports of the pool at a scrape."""
        return {
            "queue_depth": len(self.waiters) + self.batched_waiting,
            "inflight": sum(len(worker.inflight) for worker in self.workers.values()),
            "workers_ready": len(self.ready),
            "workers": self.count,
        }

    def pids(self) -> List[int]:
        """The worker processes now running (their children hold memory for them too)."""
        return [worker.process.pid for worker in self.workers.values()]

    @property
    def busy(self) -> bool:
        """A request is running, sent ahead or waiting: the model may not be evicted."""
        return (
            bool(self.waiters)
            or bool(self.batched_waiting)
            or any(worker.load for worker in self.workers.values())
        )

    @property
    def batched_waiting(self) -> int:
        return len(self.batcher.pending) if self.batcher is not None else 0

    def describe(self) -> Dict[str, Any]:
        return {
            "workers": self.count,
            "ready": len(self.ready),
            "failed": self.failed_reason,
            "last_error": self.last_error,
        }

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._schedule_watchdog()
        try:
            for index in range(self.count):
                await self._spawn(index)
        except Exception as exc:  # e.g. EMFILE: before the first load, that is a failed load
            self.fail("could not start a worker process: %s: %s" % (type(exc).__name__, exc))
            return
        try:
            await asyncio.wait_for(self.loaded.wait(), self.settings.startup_timeout)
        except asyncio.TimeoutError:
            self.fail(
                "model not loaded within SAGEMAKER_STARTUP_TIMEOUT=%gs"
                % self.settings.startup_timeout
            )

    async def _spawn(self, index: int) -> None:
        parent, child = socket.socketpair()
        try:
            # Room for a whole large request in the socket, so the event loop hands it over
            # in one write instead of buffering (and copying) the rest. Capped by the kernel.
            for end in (parent, child):
                with contextlib.suppress(OSError):
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            process = await self._start_process(child)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        loop = asyncio.get_running_loop()
        try:
            _, worker = await loop.create_connection(
                lambda: Worker(self, index, process), sock=parent
            )
        except BaseException:
            parent.close()
            process.kill()
            asyncio.ensure_future(process.wait())
            raise
        self.workers[index] = worker
        init = {
            "settings": self.settings.model_dump(mode="json", by_alias=True),
            "runtime": self.runtime_name,
            "chain": [result.to_dict() for result in self.chain],
            "index": index,
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "packages": str(self.packages) if self.packages else None,
            "device_offset": self.device_offset,
        }
        worker.send(protocol.INIT, protocol.control(init))
        log.debug(
            "worker %d %s (pid %d)",
            index,
            "spawned" if isinstance(process, SpawnedHandle) else "forked",
            process.pid,
        )
        if self.stopping:
            worker.kill()

    async def _start_process(self, child: socket.socket) -> WorkerHandle:
        """Fork the worker from the template where there is one and this model's own code
        shadows none of its packages; spawn it otherwise."""
        if self.template is not None and self._spawn_reason is None:
            try:
                packages = await self.template.ready()
            except TemplateUnavailable as exc:  # could not import: it never will
                self._spawn_reason = str(exc)
            else:
                code = (self.model_dir or self.settings.model_dir) / "code"
                paths = (self.packages or self.settings.requirements_target, code / "lib", code)
                shadowed = shadowing(paths, packages)
                if shadowed is None:
                    return await self.template.fork(child)
                self._spawn_reason = "the model's own %s" % shadowed
            log.info("workers are spawned, not forked: %s", self._spawn_reason)
        return SpawnedHandle(
            subprocess.Popen(
                [sys.executable, "-m", "eikit.server.worker", str(child.fileno())],
                pass_fds=(child.fileno(),),
                close_fds=True,
            )
        )

    def on_ready(self, worker: Worker) -> None:
        if worker.failure is not None or self.workers.get(worker.index) is not worker:
            return  # timed out or given up on while its READY was on the way
        worker.ready = worker.was_ready = True
        if self.metrics is not None:
            self.metrics.model_loaded(time.monotonic() - worker.spawned_at)
        if not self.ready:
            self._serving_since = time.monotonic()
        self.ready.append(worker)
        self.policy.served(worker.index)
        self._health_changed()
        if not self.loaded.is_set():
            if len(self.ready) == self.count:
                self.loaded.set()
                log.info(
                    "ready: %d worker(s), model on %s, %.1fs after start",
                    self.count,
                    worker.info.get("device", "?"),
                    time.monotonic() - self.started_at,
                )
        else:
            log.info(
                "worker %d replaced and ready (pid %d, loaded in %.1fs)",
                worker.index,
                worker.process.pid,
                time.monotonic() - worker.spawned_at,
            )
        self.release(worker)

    def on_failed(self, worker: Worker, message: str, code: Optional[str] = None) -> None:
        if not self.loaded.is_set():
            self.failed_code = code
            self.fail("worker %d could not load the model: %s" % (worker.index, message))
            return
        worker.failure = "could not load the model: %s" % message
        worker.kill()  # it exits by itself too; on_exit retries

    def fail(self, reason: str) -> None:
        """The model cannot be served: /ping stays 503 and waiting requests get 503."""
        if self.failed_reason is None:
            self.failed_reason = reason
            log.error("model load failed: %s", reason)
        self.loaded.set()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for worker in list(self.workers.values()):
            worker.kill()
        self._fail_waiters(ModelLoadFailed("model failed to load: %s" % reason))
        self._health_changed()

    def _retire(self, worker: Worker) -> None:
        worker.ready = False
        if worker in self.ready:
            self.ready.remove(worker)
            self._health_changed()

    def on_exit(self, worker: Worker) -> None:
        """The worker's socket closed: it exited, crashed, or was killed."""
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        self._retire(worker)
        worker.abandon(InternalError("the worker died while predicting"))
        asyncio.ensure_future(self._after_exit(worker))

    async def _after_exit(self, worker: Worker) -> None:
        # Replace only once the old process is gone, so its memory (host or device) is free.
        code = await self._reap(worker.process)
        if self.stopping or self.failed_reason is not None:
            return
        if self.draining:
            if not self.workers:
                self._fail_waiters(ModelNotReady("server is shutting down"))
            return
        if not self.loaded.is_set():
            if code == -signal.SIGKILL and worker.failure is None:
                self.failed_code = KILLED
            reason = worker.failure or "exited during load (code %s)" % code
            self.fail("worker %d %s" % (worker.index, reason))
        elif worker.was_ready:
            if self.metrics is not None and not worker.timed_out:
                self.metrics.worker_restart("crash")
            log.warning(
                "worker %d (pid %d) exited (code %s); replacing it",
                worker.index,
                worker.process.pid,
                code,
            )
            self._schedule(worker.index, REPLACE_DELAY)
        else:
            self._load_failed(worker.index, worker.failure or "exited during load (code %s)" % code)

    async def _reap(self, process: WorkerHandle) -> Optional[int]:
        try:
            return await process.wait(REAP_WAIT)
        except asyncio.TimeoutError:
            process.kill()  # its socket is closed: it can never serve again
            return await process.wait()

    def _load_failed(self, index: int, reason: str) -> None:
        """A replacement did not come up: retry with backoff, or give up (see backoff.py)."""
        self.last_error = "worker %d %s" % (index, reason)
        if self.metrics is not None:
            self.metrics.worker_restart("load_failed")
        delay = self.policy.failed(index, serving=bool(self.ready))
        if delay is None:
            self.fail(
                "%d worker loads failed in a row with no worker serving "
                "(EIKIT_MAX_RELOAD_FAILURES=%d); last: %s"
                % (self.policy.unserved, self.policy.limit, self.last_error)
            )
            return
        if not self.ready:
            self._fail_waiters(ModelNotReady("no worker is serving: %s" % self.last_error))
        log.error(
            "worker %d could not be replaced (attempt %d): %s; retrying in %.1fs",
            index,
            self.policy.attempts(index),
            reason,
            delay,
        )
        self._schedule(index, delay)

    def _schedule(self, index: int, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timers[index] = loop.call_later(
            delay, lambda: asyncio.ensure_future(self._replace(index))
        )

    async def _replace(self, index: int) -> None:
        self._timers.pop(index, None)
        if self.stopping or self.draining or self.failed_reason is not None:
            return
        if index in self.workers:
            return
        try:
            await self._spawn(index)
        except Exception as exc:  # EMFILE, ENOMEM, EAGAIN from fork: all worth a retry
            self._load_failed(
                index, "could not start a worker process: %s: %s" % (type(exc).__name__, exc)
            )

    def drain(self) -> None:
        """A stop signal arrived: keep serving, replace nobody. Safe in a signal handler."""
        self.draining = True

    async def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.batcher is not None:
            self.batcher.close()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._fail_waiters(ModelNotReady("server is shutting down"))
        workers = list(self.workers.values())
        for worker in workers:
            if worker.transport is not None:
                worker.transport.close()  # EOF: the worker exits after its current request
        deadline = time.monotonic() + timeout
        for worker in workers:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                await worker.process.wait(remaining)
            except asyncio.TimeoutError:
                log.warning("worker %d did not stop; killing it", worker.index)
                worker.process.kill()
                await worker.process.wait()

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
        if self.batcher is not None:
            return await self._submit_batched(self.batcher, meta, body)
        loop = asyncio.get_running_loop()
        while True:
            worker = self._pick()
            if worker is None:
                worker = await self._wait_for_worker()
                worker.promised -= 1
                if not worker.ready:
                    continue  # it went away while this request was being woken
            future = loop.create_future()
            worker.send_request(future, meta, body)
            try:
                return await future
            except Retry:
                continue

    async def _submit_batched(self, batcher: Batcher, meta: bytes, body: bytes) -> Reply:
        loop = asyncio.get_running_loop()
        while True:
            self._admit(len(batcher.pending))
            future = loop.create_future()
            batcher.add(future, meta, body)
            try:
                return await future
            except Retry:
                continue

    def _pick_for_batch(self) -> Optional[Worker]:
        best = None
        for worker in self.ready:
            ahead = len(worker.batches)
            if ahead == 0:
                return worker
            if ahead < BATCHES_AHEAD and (best is None or ahead < len(best.batches)):
                best = worker
        return best

    def _admit(self, waiting: int) -> None:
        """503 for a request that cannot be queued now."""
        if self.failed_reason is not None:
            raise ModelLoadFailed("model failed to load: %s" % self.failed_reason)
        if not self.loaded.is_set():
            raise ModelNotReady("model is still loading")
        if self.stopping or (self.draining and not self.workers):
            raise ModelNotReady("server is shutting down")
        if waiting >= self.settings.max_queue:
            raise ModelNotReady(
                "too many requests waiting (EIKIT_MAX_QUEUE=%d)" % self.settings.max_queue
            )

    async def _wait_for_worker(self) -> Worker:
        self._admit(len(self.waiters))
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
        """``worker`` has room again: hand it to the oldest waiting request (or batch)."""
        if self.batcher is not None:
            self.batcher.dispatch()
            return
        while worker.ready and worker.load < self.depth and self.waiters:
            waiter, _ = self.waiters.popleft()
            if not waiter.done():
                worker.promised += 1
                waiter.set_result(worker)

    # --- the watchdog: prediction, queue and replacement timeouts -------------

    def _schedule_watchdog(self) -> None:
        interval = min(0.25, self.timeout / 4)
        self._watchdog = asyncio.get_running_loop().call_later(interval, self._watch)

    def _watch(self) -> None:
        now = time.monotonic()
        for worker in list(self.ready):
            if worker.inflight and now - worker.head_started > self.timeout:
                self._timed_out(worker)
        self._expire_waiters(now)
        if self.loaded.is_set():
            self._expire_loads(now)
        if not self.stopping:
            self._schedule_watchdog()

    def _expire_waiters(self, now: float) -> None:
        """A queued request waits up to the timeout for a free worker, counted from when it
        was queued (or resent), but never from before a worker was ready: while every
        worker is being replaced it waits for the first replacement instead, which either
        loads or fails (and then the waiters get 503 at once)."""
        if not self.ready:
            return
        while self.waiters and now - max(self.waiters[0][1], self._serving_since) > self.timeout:
            waiter, _ = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(self._queue_timeout())
        if self.batcher is not None and now - self._serving_since > self.timeout:
            self.batcher.expire(now - self.timeout, self._queue_timeout)

    def _queue_timeout(self) -> Exception:
        return ModelNotReady(
            "no worker became free within SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs" % self.timeout
        )

    def _expire_loads(self, now: float) -> None:
        """A replacement gets SAGEMAKER_STARTUP_TIMEOUT to load, as the first workers did."""
        limit = self.settings.startup_timeout
        for worker in list(self.workers.values()):
            if worker.was_ready or worker.failure is not None or now - worker.spawned_at <= limit:
                continue
            worker.failure = "did not load within SAGEMAKER_STARTUP_TIMEOUT=%gs" % limit
            log.error("worker %d (pid %d) %s", worker.index, worker.process.pid, worker.failure)
            worker.kill()

    def _timed_out(self, worker: Worker) -> None:
        log.error("worker %d timed out (pid %d); replacing it", worker.index, worker.process.pid)
        worker.timed_out = True
        if self.metrics is not None:
            self.metrics.worker_restart("timeout")
        self._retire(worker)
        worker.abandon(
            PredictionTimeout(
                "prediction took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs" % self.timeout
            )
        )
        worker.kill()

    def _fail_waiters(self, error: Exception) -> None:
        if self.batcher is not None:
            self.batcher.fail_all(error)
        while self.waiters:
            waiter, _ = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
