"""Run the server: uvicorn on the frontend's event loop, graceful on SIGTERM."""

from __future__ import annotations

import logging

import uvicorn

from eikit import logs
from eikit.server.app import App
from eikit.settings import Settings

log = logging.getLogger(__name__)


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
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
