"""Multi-model endpoints (``SAGEMAKER_MULTI_MODEL=true``): models loaded, listed, invoked and
unloaded by name, within memory, count and descriptor budgets.

SageMaker drives such an endpoint through two signals: it loads a model again when an
invocation answers 404, and unloads models when a load answers 507. So the registry never
claims a model it cannot serve, and out of memory in every form is a 507.

Each model gets its own ``WorkerPool``: its own worker processes, so every model imports
its own ``code/`` (inference script, ``lib/``, requirements installed into a folder of its
own) and no model's modules, globals or crashes reach another's. Its state
(``model_state``) follows what the pool reports: a pool that can no longer serve is
restarted with new workers up to ``EIKIT_MODEL_RESTARTS`` times, then the model is dropped
(404, and SageMaker loads it again).

Memory is measured, not guessed: the proportional set size of a model's workers (and their
children), plus the GPU memory ``nvidia-smi`` lists for them, after each load and every
``EIKIT_MODELS_MEASURE_INTERVAL`` seconds. Which models make room is ``eviction.plan``'s
choice: the least recently used idle ones; 507 when only busy models are left.

Concurrency, all on the frontend's event loop: a load runs in the background (other
models keep serving); an invocation of a model still loading waits for the load; an unload
refuses new invocations at once (404) and lets the running ones finish; names never become
paths (packages go to a folder named by hash).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar

from eikit import logs
from eikit.accelerators import ProbeResult
from eikit.errors import (
    BadRequest,
    EikitError,
    InsufficientMemory,
    ModelExists,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
)
from eikit.procs import oom_killed_since, oom_kills
from eikit.requirements import install_requirements
from eikit.runtime import find_runtime
from eikit.server import model_resources
from eikit.server.metrics import Metrics
from eikit.server.model_capacity import Capacity, zero
from eikit.server.model_handle import ModelHandle
from eikit.server.model_state import (
    FAILED,
    GONE,
    LOADING,
    READY,
    UNLOADING,
    Model,
    shown,
)
from eikit.server.pool import KILLED, WorkerPool
from eikit.server.template import Template
from eikit.settings import Settings

log = logging.getLogger(__name__)

MB = model_resources.MB
MAX_NAME = 1024
RESTART_DELAY = 1.0  # before a failed restart is tried again (doubling)

T = TypeVar("T")


def detached(coroutine: Awaitable[T]) -> asyncio.Future[T]:
    """``coroutine`` as a task whose log lines carry no request id: a model's workers, and
    what their pool does later (replacing them, timing them out), outlive the request that
    loaded the model."""
    token = logs.request_id.set("")
    try:
        return asyncio.ensure_future(coroutine)
    finally:
        logs.request_id.reset(token)


class ModelRegistry:
    def __init__(
        self,
        settings: Settings,
        runtime_name: str,
        chain: List[ProbeResult],
        metrics: Optional[Metrics] = None,
        template: Optional[Template] = None,
    ) -> None:
        self.settings = settings
        self.template = template  # every model's workers fork from it, where it serves
        self.runtime_name = runtime_name
        self.chain = chain
        self.metrics = metrics
        # One worker per model unless set: a multi-model endpoint holds many models, and
        # each worker holds its model once (docs/multi-model.md, Design). The workers'
        # settings say so, so that each divides the cores by its own model's workers.
        self.workers = settings.workers or 1
        self.model_settings = settings.model_copy(update={"workers": self.workers})
        runtime = find_runtime(runtime_name)
        self.lib_replaces_requirements = runtime.lib_replaces_requirements
        self.batching = runtime.batching(settings)  # the endpoint's, for each model
        self.capacity = Capacity(
            settings,
            self.workers,
            runtime.worker_numbers(settings),
            gpu=bool(chain) and chain[0].kind == "cuda",
        )
        self.slots = self.capacity.slots
        self.models: Dict[str, Model] = {}
        self.evictions = 0
        self.draining = False
        self._lock = asyncio.Lock()
        self._measurer: Optional[asyncio.Future] = None
        self._work_dir: Optional[Path] = None  # models' packages, made at the first load

    # --- reading -------------------------------------------------------------

    def _work(self) -> Path:
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="eikit-models-"))
        return self._work_dir

    def gauges(self) -> Dict[str, float]:
        totals: Dict[str, float] = {}
        for model in self.models.values():
            for name, value in model.pool.gauges().items():
                totals[name] = totals.get(name, 0) + value
        totals["models_loaded"] = sum(1 for m in self.models.values() if m.state == READY)
        totals["models_memory_bytes"] = sum(m.memory for m in self.models.values())
        totals["models_evicted"] = self.evictions
        return totals

    def describe(self, name: str) -> Dict[str, Any]:
        return self._get(name).describe()

    def page(self, token: Optional[str], max_results: Optional[int]) -> Dict[str, Any]:
        """Models that serve (ready, with a worker ready), in name order, ``max_results`` at a
        time; ``token`` is the name to start after (opaque to SageMaker, which hands back
        what it was given)."""
        names = sorted(name for name, model in self.models.items() if model.serving)
        start = 0
        if token:
            start = next((i for i, name in enumerate(names) if name > token), len(names))
        end = len(names) if max_results is None else start + max_results
        answer: Dict[str, Any] = {
            "models": [self.models[name].listing() for name in names[start:end]]
        }
        if end < len(names):
            answer["nextPageToken"] = names[end - 1]
        return answer

    def _get(self, name: str) -> Model:
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound("model %s is not loaded" % shown(name))
        return model

    # --- invoking ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[ModelHandle]:
        """Model ``name`` for one request (``submit`` it there). One being unloaded, failed
        or not loaded is a 404 at once; one still loading is waited for."""
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound("model %s is not loaded" % shown(name))
        if model.state in (UNLOADING, FAILED, GONE):
            raise ModelNotFound("model %s is being unloaded (%s)" % (shown(name), model.reason))
        model.hold()
        try:
            yield ModelHandle(model, self.settings.startup_timeout)
        finally:
            model.release()

    # --- loading -------------------------------------------------------------

    async def load(self, name: Any, url: Any) -> Model:
        name, path = self._check_request(name, url)
        if self.draining:
            raise ModelNotReady("server is shutting down")
        size_wanted = not self.capacity.knows_sizes(self.models.values())
        files = await self._in_thread(model_resources.check_model_dir, path, size_wanted)
        async with self._lock:
            if name in self.models:
                model = self.models[name]
                raise ModelExists("model %s is already %s" % (shown(name), model.state))
            need = self.capacity.estimate(name, files, self.models.values())
            await self._make_room(need, "load %s" % shown(name))
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
            model = Model(name, path, self.slots.take(), self._work() / digest)
            model.reserved = need
            model.pool = self._new_pool(model)
            self.models[name] = model
            log.info("model %s: loading from %s (slot %d)", shown(name), path, model.slot)
        self._start_measuring()
        try:
            await self._bring_up(model, install=True)
        except BaseException as exc:
            reason = exc.message if isinstance(exc, EikitError) else type(exc).__name__
            await self._drop(model, reason)
            raise
        return model

    def _check_request(self, name: Any, url: Any) -> Tuple[str, Path]:
        if not isinstance(name, str) or not name:
            raise BadRequest('"model_name" must be a non-empty string')
        if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            raise BadRequest("model_name must be at most %d printable characters" % MAX_NAME)
        if not isinstance(url, str) or not url:
            raise BadRequest('"url" must be a non-empty string: the model\'s directory')
        return name, model_resources.model_path(self.settings, url)

    def _new_pool(self, model: Model) -> WorkerPool:
        pool = WorkerPool(
            self.model_settings,
            self.runtime_name,
            self.chain,
            self.workers,
            self.metrics,
            model_dir=model.url,
            packages=model.packages,
            device_offset=model.slot * self.workers,
            template=self.template,
            batching=self.batching,
        )
        pool.on_health = lambda changed: self._pool_health(model, changed)
        return pool

    async def _bring_up(self, model: Model, install: bool) -> None:
        """Start the model's pool, measure it, and make it READY if it fits (making room
        for it if need be): the fit check and READY are one step under the lock."""
        started = time.monotonic()
        kills = await self._in_thread(oom_kills, self.settings.cgroup_root)
        await detached(self._start(model, install, kills))
        groups = [model.pool.pids()]
        host, gpu = (await self._in_thread(self.capacity.measure, groups))[0]
        async with self._lock:
            if model.state != LOADING:
                raise ModelNotReady("model %s was unloaded while it loaded" % shown(model.name))
            if model.pool.failed_reason is not None:  # gave up on its workers meanwhile
                raise ModelLoadError(
                    "model %s did not load: %s" % (shown(model.name), model.pool.failed_reason)
                )
            model.load_seconds = time.monotonic() - started
            model.memory, model.gpu_memory = host, gpu
            model.reserved = {}
            self.capacity.remember(model)
            try:
                await self._make_room(zero(), "keep %s" % shown(model.name), keep=model)
            except InsufficientMemory as exc:
                model.move(UNLOADING, "it did not fit once measured: %s" % exc.message)
                await self._discard(model)
                raise
            model.last_used = time.monotonic()  # a finished load counts as a use
            model.move(
                READY,
                "loaded in %.1fs: %.0f MiB%s; %d model(s) hold %.0f MiB"
                % (
                    model.load_seconds,
                    host / MB,
                    " and %.0f MiB of GPU memory" % (gpu / MB) if gpu else "",
                    len(self.models),
                    sum(m.memory for m in self.models.values()) / MB,
                ),
            )

    async def _start(self, model: Model, install: bool, kills: Dict[str, int]) -> None:
        code = model.url / "code"
        if install and self.settings.install_requirements and (code / "requirements.txt").is_file():
            assert model.packages is not None
            model.packages.mkdir(parents=True, exist_ok=True)
            await install_requirements(code, model.packages, self.lib_replaces_requirements)
        pool = model.pool
        await pool.start()
        if pool.failed_reason is None:
            return
        message = "model %s did not load: %s" % (shown(model.name), pool.failed_reason)
        if pool.failed_code == "no_model_files":
            raise ModelNotFound(message)
        if pool.failed_code == InsufficientMemory.code:
            raise InsufficientMemory(message)
        if pool.failed_code == KILLED:
            # SIGKILL during a load: the OOM killer's, if the kernel counted a kill meanwhile.
            counter = oom_killed_since(kills, oom_kills(self.settings.cgroup_root))
            if counter is not None:
                raise InsufficientMemory(
                    "%s: killed by the kernel's OOM killer (the %s oom_kill count grew)"
                    % (message, counter)
                )
            message += " (SIGKILL, and the kernel counted no OOM kill)"
        raise ModelLoadError(message)

    # --- making room -----------------------------------------------------------

    async def _make_room(
        self, need: Dict[str, int], purpose: str, keep: Optional[Model] = None
    ) -> None:
        """Unload least recently used idle models until ``need`` fits; 507 if it cannot.
        Called under the lock; one victim at a time, planned again after each."""
        while True:
            step = self.capacity.next_victim(self.models.values(), need, purpose, keep)
            if step is None:
                return
            name, why = step
            self.evictions += 1
            await self._unload(
                self.models[name], "evicted, least recently used, to %s: %s" % (purpose, why)
            )

    async def refresh(self) -> None:
        """Measure every model that serves with all its workers, then keep within the caps."""
        models = [
            m
            for m in self.models.values()
            if m.state == READY and len(m.pool.ready) == m.pool.count
        ]
        if not models:
            return
        sizes = await self._in_thread(self.capacity.measure, [m.pool.pids() for m in models])
        async with self._lock:
            for model, (host, gpu) in zip(models, sizes):
                if model.state == READY and host:
                    model.memory, model.gpu_memory = host, gpu
                    self.capacity.remember(model)
            try:
                await self._make_room(zero(), "keep the models within their caps")
            except InsufficientMemory as exc:
                log.warning("models are over their caps: %s", exc.message)

    def _start_measuring(self) -> None:
        if self._measurer is None:
            self._measurer = detached(self._measure_every())

    async def _measure_every(self) -> None:
        while not self.draining:
            await asyncio.sleep(self.settings.models_measure_interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("measuring the models failed")

    # --- when a pool can no longer serve ---------------------------------------

    def _pool_health(self, model: Model, pool: WorkerPool) -> None:
        """The pool's health changed. One that failed for good (its workers could not be
        replaced) is restarted, within EIKIT_MODEL_RESTARTS, else the model is dropped."""
        if pool is not model.pool or model.state != READY or pool.failed_reason is None:
            return
        if self.draining:
            return
        reason = "its workers can no longer serve: %s" % pool.failed_reason
        if model.restarts >= self.settings.model_restarts:
            model.move(
                FAILED, "%s; EIKIT_MODEL_RESTARTS=%d spent" % (reason, self.settings.model_restarts)
            )
            detached(self._discard(model))
            return
        model.restarts += 1
        model.move(
            LOADING, "restart %d of %d: %s" % (model.restarts, self.settings.model_restarts, reason)
        )
        detached(self._restart(model))

    async def _restart(self, model: Model) -> None:
        """New workers for a model whose workers could no longer serve; tried again, with
        backoff, while EIKIT_MODEL_RESTARTS lasts, else the model is dropped."""
        delay = RESTART_DELAY
        while True:
            await model.pool.stop()
            if self.draining or model.state != LOADING:
                return
            model.pool = self._new_pool(model)
            try:
                await self._bring_up(model, install=False)
                return
            except Exception as exc:
                reason = exc.message if isinstance(exc, EikitError) else repr(exc)
                if model.state != LOADING:
                    return  # unloaded meanwhile, or did not fit (already dropped)
                if self.draining or model.restarts >= self.settings.model_restarts:
                    await self._drop(
                        model,
                        "restart failed: %s; EIKIT_MODEL_RESTARTS=%d spent"
                        % (reason, self.settings.model_restarts),
                    )
                    return
                model.restarts += 1
                log.warning(
                    "model %s: restart failed (%s); restart %d of %d in %.0fs",
                    shown(model.name),
                    reason,
                    model.restarts,
                    self.settings.model_restarts,
                    delay,
                )
                await asyncio.sleep(delay)
                delay *= 2

    # --- unloading -----------------------------------------------------------

    async def unload(self, name: str) -> None:
        model = self._get(name)
        if model.state == LOADING:
            await model.settled.wait()
        if model.state != READY:
            raise ModelNotFound("model %s is not loaded (%s)" % (shown(name), model.state))
        await self._unload(model, "asked to")

    async def _unload(self, model: Model, why: str) -> None:
        model.move(UNLOADING, why)
        grace = self.settings.model_server_timeout + 5
        try:
            await asyncio.wait_for(model.idle.wait(), grace)
        except asyncio.TimeoutError:
            log.warning(
                "model %s: %d request(s) still running after %.0fs; unloading anyway",
                shown(model.name),
                model.active,
                grace,
            )
        await self._discard(model)

    async def _drop(self, model: Model, reason: str) -> None:
        """A load or restart failed: the model goes, and its name is free again."""
        if model.state in (LOADING, READY):
            model.move(FAILED, reason)
        await self._discard(model)

    async def _discard(self, model: Model) -> None:
        """Stop the model's workers, forget it, give its slot back, delete its packages."""
        if model.state == GONE:
            return
        try:
            await model.pool.stop()
        finally:
            if self.models.get(model.name) is model:
                del self.models[model.name]
            self.slots.give(model.slot)
            if model.state != GONE:
                model.move(GONE, "workers stopped")
            if model.packages is not None:
                await self._in_thread(shutil.rmtree, str(model.packages), True)

    # --- the whole endpoint ----------------------------------------------------

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    def drain(self) -> None:
        """A stop signal arrived: serve what is loaded, load and replace nothing."""
        self.draining = True
        for model in self.models.values():
            model.pool.drain()

    async def stop(self) -> None:
        self.draining = True
        if self._measurer is not None:
            self._measurer.cancel()
        models = list(self.models.values())
        for model in models:
            if model.state in (LOADING, READY):
                model.move(UNLOADING, "the server is stopping")
        await asyncio.gather(*(self._discard(model) for model in models), return_exceptions=True)
        if self._work_dir is not None:
            shutil.rmtree(str(self._work_dir), ignore_errors=True)
