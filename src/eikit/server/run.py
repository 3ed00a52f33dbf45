"""Run the server: uvicorn on the frontend's event loop, graceful on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
from typing import Any, Iterator

import uvicorn

from eikit import logs
from eikit.server.app import App
from eikit.settings import Settings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown (exit status 143); a drained
    server has done its job, so it exits 0 instead."""

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
        self.handle_exit(sig, frame)


def serve(settings: Settings) -> int:
    logs.configure(settings.log_level)
    log.info("eikit serving %s on %s:%d", settings.model_dir, settings.host, settings.port)
    config = uvicorn.Config(
        App(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=settings.access_log,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.graceful_timeout),
        timeout_keep_alive=75,  # above SageMaker's 60 s idle timeout, as AWS recommends
        server_header=False,
        date_header=False,
        proxy_headers=False,  # SageMaker's front door talks to the container directly
    )
    server = _Server(config)
    server.run()
    return 0 if server.started else 1
