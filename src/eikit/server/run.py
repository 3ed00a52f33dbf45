"""Run the server: uvicorn on the frontend's event loop, graceful on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
from typing import Any, Callable, Iterator

import uvicorn

from eikit import logs
from eikit.server.app import App
from eikit.server.direct_route import Route
from eikit.server.http import Limits, connection_cap, protocol_class
from eikit.settings import Settings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown (exit status 143); a drained
    server has done its job, so it exits 0 instead.

    SIGINT and SIGTERM often reach the whole process group (Ctrl-C in a terminal;
    systemd, ``tini -g``). Workers ignore them; the frontend tells the pool to stop
    replacing workers, drains in-flight requests, then stops the workers itself."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_signal = on_signal

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29; older ones don't re-raise
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: Any) -> None:
        log.info("signal %d: draining in-flight requests, then stopping", sig)
        self.on_signal()
        self.handle_exit(sig, frame)


def _read_whole_bodies(limit: int) -> None:
    """Let uvicorn buffer a request body up to the payload limit before pausing the socket.

    uvicorn pauses reading every 64 KiB until the app asks for more, so a 600 KB image
    costs about ten pause/resume round trips. Measured here (bench/, 600 KB NPY, no model):
    uvicorn alone spent 0.92 ms of CPU per request with its default and 0.62 ms with this.
    Larger bodies are refused (413) before they are read, so memory stays bounded by
    the payload limit per connection. uvicorn reads the constant at call time."""
    from uvicorn.protocols.http import httptools_impl

    if getattr(httptools_impl, "HIGH_WATER_LIMIT", limit) < limit:
        httptools_impl.HIGH_WATER_LIMIT = limit  # type: ignore[attr-defined]


def serve(settings: Settings) -> int:
    logs.configure(settings.log_level)
    _read_whole_bodies(settings.max_payload_bytes + 1)
    log.info("eikit serving %s on %s:%d", settings.model_dir, settings.host, settings.port)
    app = App(settings)
    limits = Limits.from_settings(settings, connection_cap(settings))
    log.debug("HTTP limits: %s", limits)
    handler = app.direct_route()
    direct = None if handler is None else Route(handler, settings.max_payload_bytes)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_class(
            limits, direct
        ),  # uvicorn's httptools protocol with eikit.server.http's limits
        ws="none",
        log_config=None,
        access_log=False,  # eikit.server.app writes the access log (EIKIT_ACCESS_LOG)
        lifespan="on",
        timeout_graceful_shutdown=int(settings.graceful_timeout),
        timeout_keep_alive=settings.keep_alive_timeout,  # a float works too
        server_header=False,
        date_header=False,
        proxy_headers=False,  # SageMaker's front door talks to the container directly
    )
    server = _Server(config, app.boot.begin_shutdown)
    server.run()
    return 0 if server.started else 1
