"""One model of a multi-model endpoint and the states it goes through.

::

    LOADING ──> READY ──> UNLOADING ──> GONE
       │  ^       │                      ^
       │  └───────┤ (restarted: its workers could no longer serve)
       v          v                      │
     FAILED <─────┘ ─────────────────────┘

LOADING: its workers are starting (a first load, or a restart); invocations wait for it.
READY: it serves, and is listed. UNLOADING: asked to go, evicted, or did not fit; new
invocations get 404, running ones finish. FAILED: it cannot load or could not be restarted;
it is being dropped. GONE: its workers are stopped and its name is free again.

Only the registry moves a model (``ModelRegistry``), on the event loop, and every decision
that spans an ``await`` (admitting a load, the fit check that makes it READY, choosing and
unloading victims) under the registry's one lock. Each move is logged once, with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

from eikit import logs

if TYPE_CHECKING:
    from eikit.server.pool import WorkerPool

log = logging.getLogger("eikit.server.models")

LOADING, READY, UNLOADING, GONE, FAILED = "loading", "ready", "unloading", "gone", "failed"

ALLOWED = {
    LOADING: (READY, UNLOADING, FAILED),
    READY: (UNLOADING, LOADING, FAILED),
    UNLOADING: (GONE,),
    FAILED: (GONE,),
    GONE: (),
}


class IllegalTransition(RuntimeError):
    """A bug: the registry tried a move the state machine does not have."""


def shown(name: str) -> str:
    """A model name for a message or a log line: quoted, control characters escaped."""
    return repr(logs.printable(name)[:200])


class Model:
    def __init__(self, name: str, url: Path, slot: int, packages: Optional[Path]) -> None:
        self.name = name
        self.url = url
        self.slot = slot  # from the registry's free list; its workers are numbered from it
        self.packages = packages
        self.pool: WorkerPool = None  # type: ignore[assignment]  # set by the registry
        self.state = LOADING
        self.reason = "asked to load"
        self.settled = asyncio.Event()  # not LOADING: a load or restart ended, either way
        self.idle = asyncio.Event()  # no invocation holds the model
        self.idle.set()
        self.active = 0
        self.last_used = time.monotonic()
        self.memory = 0  # bytes of host memory, measured (PSS of its workers' trees)
        self.gpu_memory = 0  # bytes of GPU memory, measured
        self.reserved: Dict[str, int] = {}  # held for it while it loads (an estimate)
        self.load_seconds = 0.0
        self.restarts = 0

    def move(self, state: str, reason: str) -> None:
        if state not in ALLOWED[self.state]:
            raise IllegalTransition(
                "model %s cannot go from %s to %s (%s)"
                % (shown(self.name), self.state, state, reason)
            )
        level = logging.WARNING if state == FAILED else logging.INFO
        log.log(level, "model %s: %s -> %s (%s)", shown(self.name), self.state, state, reason)
        self.state = state
        self.reason = reason
        if state == LOADING:
            self.settled.clear()
        else:
            self.settled.set()

    @property
    def evictable(self) -> bool:
        """Ready and idle: nothing running, sent ahead, queued or waiting for it."""
        return self.state == READY and self.active == 0 and not self.pool.busy

    @property
    def serving(self) -> bool:
        """Ready, and a worker is ready now (not all of them being replaced)."""
        return self.state == READY and bool(self.pool.ready)

    def hold(self) -> None:
        self.active += 1
        self.idle.clear()

    def release(self) -> None:
        self.active -= 1
        if self.active == 0:
            self.idle.set()

    def listing(self) -> Dict[str, str]:
        return {"modelName": self.name, "modelUrl": str(self.url)}

    def describe(self) -> Dict[str, Any]:
        info: Dict[str, Any] = self.listing()
        info.update(
            status=self.state,
            reason=self.reason,
            workers=self.pool.count,
            workersReady=len(self.pool.ready),
            serving=self.serving,
            memoryBytes=self.memory,
            gpuMemoryBytes=self.gpu_memory,
            loadSeconds=round(self.load_seconds, 3),
            restarts=self.restarts,
        )
        return info
