"""Multi-model endpoints (``SAGEMAKER_MULTI_MODEL=true``): models loaded, listed, invoked and
unloaded by name, within a memory and count budget.

Each model gets its own ``WorkerPool``: its own worker processes, so every model imports
its own ``code/`` (inference script, ``lib/``, requirements installed into a folder of its
own) and no model's modules, globals or crashes reach another's. A pool is the same one a
single-model endpoint runs, so a model's workers are supervised, replaced and timed out
the same way. Why processes per model, and what it costs, is measured in the README
("Multi-model endpoints: design").

Memory is measured, not guessed: after a model loads, the proportional set size of its
workers (and their children) is what it costs. Loading past ``EIKIT_MODELS_MEMORY_MB`` (or
``EIKIT_MAX_MODELS``) unloads the least recently used idle models first, and answers 507
when only busy models are left, as SageMaker expects: it then unloads models itself.

Concurrency, all on the frontend's event loop: a load runs in the background (other
models keep serving); an invoke of a model still loading waits for the load; an unload
refuses new invokes at once (404, so SageMaker loads the model again) and lets the
running ones finish; names never become paths (packages go to a folder named by hash).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

from eikit import logs
from eikit.accelerators import ProbeResult
from eikit.errors import (
    BadRequest,
    InsufficientMemory,
    ModelExists,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
)
from eikit.procs import available_bytes, memory_limit_bytes, trees_pss
from eikit.requirements import install_requirements
from eikit.server.metrics import Metrics
from eikit.server.pool import WorkerPool
from eikit.settings import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
DEFAULT_MEMORY_SHARE = 0.85  # of the container's limit, when EIKIT_MODELS_MEMORY_MB is unset
MAX_NAME = 1024
REMEMBERED_SIZES = 10000  # measured sizes kept for models unloaded since (estimates)

LOADING, READY, UNLOADING = "loading", "ready", "unloading"


class Model:
    def __init__(self, name: str, url: Path, pool: WorkerPool, packages: Optional[Path]) -> None:
        self.name = name
        self.url = url
        self.pool = pool
        self.packages = packages
        self.state = LOADING
        self.settled = asyncio.Event()  # the load ended, either way
        self.idle = asyncio.Event()  # no invoke holds the model
        self.idle.set()
        self.active = 0
        self.last_used = time.monotonic()
        self.memory = 0  # bytes, measured once loaded
        self.reserved = 0  # bytes held for it while it loads (an estimate)
        self.load_seconds = 0.0

    @property
    def evictable(self) -> bool:
        return self.state == READY and self.active == 0 and not self.pool.busy

    def listing(self) -> Dict[str, str]:
        return {"modelName": self.name, "modelUrl": str(self.url)}

    def describe(self) -> Dict[str, Any]:
        info: Dict[str, Any] = self.listing()
        info.update(
            status=self.state,
            workers=self.pool.count,
            workersReady=len(self.pool.ready),
            memoryBytes=self.memory,
            loadSeconds=round(self.load_seconds, 3),
        )
        return info


class ModelRegistry:
    def __init__(
        self,
        settings: Settings,
        runtime_name: str,
        chain: List[ProbeResult],
        metrics: Optional[Metrics] = None,
    ) -> None:
        self.settings = settings
        self.runtime_name = runtime_name
        self.chain = chain
        self.metrics = metrics
        # One worker per model unless set: a multi-model endpoint holds many models, and
        # each worker holds its model once (README, multi-model design).
        self.workers = settings.workers or 1
        self.max_models = settings.max_models
        if settings.models_memory_mb is not None:
            self.memory_cap: Optional[int] = int(settings.models_memory_mb * MB)
        else:
            limit = memory_limit_bytes()
            self.memory_cap = int(limit * DEFAULT_MEMORY_SHARE) if limit else None
        self.models: Dict[str, Model] = {}
        self.evictions = 0
        self.draining = False
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._admission = asyncio.Lock()
        self._loads = 0
        self._work_dir: Optional[Path] = None  # models' packages, made at the first load
        log.info(
            "multi-model endpoint: %d worker(s) per model, memory for models %s, at most %s",
            self.workers,
            "%.0f MiB" % (self.memory_cap / MB) if self.memory_cap else "unlimited",
            "%d models" % self.max_models if self.max_models else "any number of models",
        )

    # --- reading -------------------------------------------------------------

    def _work(self) -> Path:
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="eikit-models-"))
        return self._work_dir

    def used(self) -> int:
        return sum(model.memory + model.reserved for model in self.models.values())

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
        """Loaded models in name order, ``max_results`` at a time; ``token`` is the name to
        start after (opaque to SageMaker, which hands back what it was given)."""
        names = sorted(name for name, model in self.models.items() if model.state == READY)
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
            raise ModelNotFound("model %s is not loaded" % _shown(name))
        return model

    # --- invoking ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[WorkerPool]:
        """The pool of model ``name`` for one request. A model still loading is waited
        for; one being unloaded, or not loaded, is a 404 at once."""
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound("model %s is not loaded" % _shown(name))
        if model.state == UNLOADING:
            raise ModelNotFound("model %s is being unloaded" % _shown(name))
        model.active += 1
        model.idle.clear()
        try:
            if model.state == LOADING:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(model.settled.wait(), self.settings.startup_timeout)
            if model.state != READY:
                raise ModelNotFound("model %s is not loaded (%s)" % (_shown(name), model.state))
            model.last_used = time.monotonic()
            yield model.pool
        finally:
            model.active -= 1
            if model.active == 0:
                model.idle.set()

    # --- loading -------------------------------------------------------------

    async def load(self, name: Any, url: Any) -> Model:
        name, path = self._check_request(name, url)
        if self.draining:
            raise ModelNotReady("server is shutting down")
        async with self._admission:
            if name in self.models:
                raise ModelExists(
                    "model %s is already %s" % (_shown(name), self.models[name].state)
                )
            estimate = self._estimate(name, path)
            await self._make_room(estimate, "load %s" % _shown(name))
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
            packages = self._work() / digest  # never the name itself: names are not paths
            pool = WorkerPool(
                self.settings,
                self.runtime_name,
                self.chain,
                self.workers,
                self.metrics,
                model_dir=path,
                packages=packages,
                device_offset=self._loads * self.workers,
            )
            self._loads += 1
            model = Model(name, path, pool, packages)
            model.reserved = estimate
            self.models[name] = model
        started = time.monotonic()
        try:
            await self._start(model)
        except BaseException:
            await self._discard(model)
            raise
        model.load_seconds = time.monotonic() - started
        model.memory = trees_pss(pool.pids())
        model.reserved = 0
        model.state = READY
        model.settled.set()
        self._remember(name, model.memory)
        log.info(
            "model %s loaded from %s in %.1fs: %.0f MiB (%d model(s), %.0f MiB in all)",
            _shown(name),
            path,
            model.load_seconds,
            model.memory / MB,
            len(self.models),
            self.used() / MB,
        )
        async with self._admission:
            # Measured now: if it does not fit after all, make room or give it back.
            try:
                await self._make_room(0, "keep %s" % _shown(name), keep=model)
            except InsufficientMemory:
                await self._unload(model, "it did not fit")
                raise
        return model

    def _check_request(self, name: Any, url: Any) -> Tuple[str, Path]:
        if not isinstance(name, str) or not name:
            raise BadRequest('"model_name" must be a non-empty string')
        if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            raise BadRequest("model_name must be at most %d printable characters" % MAX_NAME)
        if not isinstance(url, str) or not url:
            raise BadRequest('"url" must be a non-empty string: the model\'s directory')
        path = Path(url)
        if not path.is_dir():
            raise ModelNotFound("no model directory at %s" % logs.printable(url)[:300])
        if not any(path.iterdir()):
            raise ModelNotFound("model directory %s is empty" % logs.printable(url)[:300])
        return name, path

    async def _start(self, model: Model) -> None:
        code = model.url / "code"
        if self.settings.install_requirements and (code / "requirements.txt").is_file():
            assert model.packages is not None
            model.packages.mkdir(parents=True, exist_ok=True)
            await install_requirements(code, model.packages)
        await model.pool.start()
        pool = model.pool
        if pool.failed_reason is not None:
            message = "model %s did not load: %s" % (_shown(model.name), pool.failed_reason)
            if pool.failed_code == "no_model_files":
                raise ModelNotFound(message)
            raise ModelLoadError(message)

    def _estimate(self, name: str, path: Path) -> int:
        """What a model about to load will hold: its own last measurement, else the median
        of the models measured here, else its files' size (the first model)."""
        if name in self._sizes:
            return self._sizes[name]
        measured = [m.memory for m in self.models.values() if m.memory] or list(
            self._sizes.values()
        )
        if measured:
            return int(statistics.median(measured))
        return _files_size(path) * self.workers

    def _remember(self, name: str, size: int) -> None:
        self._sizes[name] = size
        self._sizes.move_to_end(name)
        while len(self._sizes) > REMEMBERED_SIZES:
            self._sizes.popitem(last=False)

    def _over(self, need: int, keep: Optional[Model]) -> Optional[str]:
        """Why ``need`` more bytes (and one more model, unless ``keep`` is loaded) do not
        fit, or None."""
        count = len(self.models) + (0 if keep is not None else 1)
        if self.max_models is not None and count > self.max_models:
            return "EIKIT_MAX_MODELS=%d models are loaded" % self.max_models
        used = self.used()
        if self.memory_cap is not None and used + need > self.memory_cap:
            return "models hold %.0f MiB and this needs %.0f MiB of the %.0f MiB allowed" % (
                used / MB,
                need / MB,
                self.memory_cap / MB,
            )
        available = available_bytes()
        if need and available is not None and available < need:
            return "%.0f MiB of memory is free and this needs %.0f MiB" % (
                available / MB,
                need / MB,
            )
        return None

    async def _make_room(self, need: int, purpose: str, keep: Optional[Model] = None) -> None:
        """Unload least recently used idle models until ``need`` fits; 507 if it cannot."""
        while True:
            reason = self._over(need, keep)
            if reason is None:
                return
            idle = [m for m in self.models.values() if m is not keep and m.evictable]
            if not idle:
                busy = sum(1 for m in self.models.values() if m is not keep)
                raise InsufficientMemory(
                    "no room to %s: %s, and none of the %d other model(s) is idle"
                    % (purpose, reason, busy)
                )
            victim = min(idle, key=lambda m: m.last_used)
            log.info(
                "unloading model %s (least recently used) to %s: %s",
                _shown(victim.name),
                purpose,
                reason,
            )
            self.evictions += 1
            await self._unload(victim, "evicted")

    # --- unloading -----------------------------------------------------------

    async def unload(self, name: str) -> None:
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound("model %s is not loaded" % _shown(name))
        if model.state == LOADING:
            await model.settled.wait()
        if model.state != READY:
            raise ModelNotFound("model %s is not loaded (%s)" % (_shown(name), model.state))
        await self._unload(model, "asked to")

    async def _unload(self, model: Model, why: str) -> None:
        model.state = UNLOADING
        grace = self.settings.model_server_timeout + 5
        try:
            await asyncio.wait_for(model.idle.wait(), grace)
        except asyncio.TimeoutError:
            log.warning(
                "model %s: %d request(s) still running after %.0fs; unloading anyway",
                _shown(model.name),
                model.active,
                grace,
            )
        await self._discard(model)
        log.info("model %s unloaded (%s)", _shown(model.name), why)

    async def _discard(self, model: Model) -> None:
        """Stop the model's workers, forget it and delete its packages."""
        model.state = UNLOADING
        model.settled.set()
        try:
            await model.pool.stop()
        finally:
            if self.models.get(model.name) is model:
                del self.models[model.name]
            if model.packages is not None:
                await asyncio.get_running_loop().run_in_executor(
                    None, shutil.rmtree, str(model.packages), True
                )

    # --- the whole endpoint ----------------------------------------------------

    def drain(self) -> None:
        """A stop signal arrived: serve what is loaded, load and replace nothing."""
        self.draining = True
        for model in self.models.values():
            model.pool.drain()

    async def stop(self) -> None:
        models = list(self.models.values())
        await asyncio.gather(*(self._discard(model) for model in models), return_exceptions=True)
        if self._work_dir is not None:
            shutil.rmtree(str(self._work_dir), ignore_errors=True)


def _shown(name: str) -> str:
    """A model name for a message or a log line: quoted, control characters escaped."""
    return repr(logs.printable(name)[:200])


def _files_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(str(path)):
        for file in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, file))
    return total
