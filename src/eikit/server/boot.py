"""Start-up in the background: requirements, accelerator detection, workers.

The HTTP server listens from the first moment, so ``/ping`` answers 503 while this runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Optional

from eikit.accelerators import Detection, detect
from eikit.requirements import install_requirements
from eikit.runtime import find_runtime
from eikit.server import early_template
from eikit.server.metrics import Metrics
from eikit.server.models import ModelRegistry
from eikit.server.pool import WorkerPool
from eikit.server.template import Template
from eikit.settings import Settings

log = logging.getLogger(__name__)


class Boot:
    def __init__(self, settings: Settings, metrics: Optional[Metrics] = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pool: Optional[WorkerPool] = None
        self.registry: Optional[ModelRegistry] = None  # a multi-model endpoint's models
        self.detection: Optional[Detection] = None
        self.template: Optional[Template] = None  # EIKIT_WORKER_START=fork
        self.worker_count: Optional[int] = None
        self.stage = "starting"
        self.error: Optional[str] = None
        self.shutting_down = False
        self._task: Optional[asyncio.Task] = None

    @property
    def healthy(self) -> bool:
        """What /ping says: the model serves, or (multi-model) models can be loaded."""
        if self.registry is not None:
            return True
        return self.pool is not None and self.pool.healthy

    @property
    def failed(self) -> bool:
        return self.error is not None or (
            self.pool is not None and self.pool.failed_reason is not None
        )

    def status(self) -> str:
        if self.error is not None:
            return "model failed to load: %s" % self.error
        if self.pool is not None:
            if self.pool.failed_reason is not None:
                return "model failed to load: %s" % self.pool.failed_reason
            info = self.pool.describe()
            if self.pool.loaded.is_set():
                return "no worker serving: %d of %d ready, being replaced (last error: %s)" % (
                    info["ready"],
                    info["workers"],
                    info["last_error"] or "none",
                )
            return "model loading: %d of %d worker(s) ready" % (info["ready"], info["workers"])
        return "model loading: %s" % self.stage

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        settings = self.settings
        started = time.monotonic()
        try:
            # The runtime first: whether code/lib replaces requirements.txt is its rule.
            runtime = await asyncio.get_running_loop().run_in_executor(
                None, find_runtime, settings.framework
            )
            if settings.install_requirements and not settings.multi_model:
                self.stage = "installing requirements"
                await install_requirements(
                    settings.code_dir,
                    settings.requirements_target,
                    runtime.lib_replaces_requirements,
                )
            self.stage = "detecting accelerators"
            probes = runtime.probes(settings)
            self.detection = await asyncio.get_running_loop().run_in_executor(
                None, detect, probes, settings.accelerator, settings.strict_accelerator
            )
            chosen = self.detection.chosen
            if settings.worker_start == "fork":
                modules = runtime.fork_preload(chosen)
                if modules is None:
                    log.info(
                        "workers are spawned: the %s runtime does not fork on %s",
                        runtime.name,
                        chosen.kind,
                    )
                else:
                    self.template = Template(settings, runtime.name, modules)
            if settings.multi_model:
                self.registry = ModelRegistry(
                    settings, runtime.name, self.detection.chain, self.metrics, self.template
                )
                self.registry.draining = self.shutting_down
                self.worker_count = self.registry.workers
                log.info(
                    "ready for models (%s runtime, %.1fs)", runtime.name, time.monotonic() - started
                )
                return
            self.worker_count = settings.workers or runtime.default_workers(chosen, settings)
            self.stage = "starting workers"
            log.info(
                "starting %d %s worker(s) for %s (%.1fs)",
                self.worker_count,
                runtime.name,
                settings.model_dir,
                time.monotonic() - started,
            )
            self.pool = WorkerPool(
                settings,
                runtime.name,
                self.detection.chain,
                self.worker_count,
                self.metrics,
                template=self.template,
                batching=runtime.batching(settings),
            )
            self.pool.draining = self.shutting_down
            await self.pool.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = "%s: %s" % (type(exc).__name__, exc)
            log.error("start-up failed: %s", self.error)
        finally:
            # The template ``serve`` started early was adopted by now if it was wanted
            # (the pool's first worker starts it): otherwise it goes.
            early_template.discard()

    def begin_shutdown(self) -> None:
        """A stop signal arrived: requests in flight are served, no worker is replaced.
        Called from the signal handler, so it only sets flags."""
        self.shutting_down = True
        if self.pool is not None:
            self.pool.drain()
        if self.registry is not None:
            self.registry.drain()

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.pool is not None:
            await self.pool.stop()
        if self.registry is not None:
            await self.registry.stop()
        if self.template is not None:  # last: it reports the exits of the pools' workers
            await self.template.stop()
