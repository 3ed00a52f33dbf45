"""A TF-Serving-compatible REST endpoint on localhost, for scripts that call TF Serving
themselves (``requests.post(context.rest_uri, data=...)``, as AWS's ``handler`` scripts do).

On the in-process path there is no ``tensorflow_model_server``, so each worker serves the
part of TF Serving's REST API scripts use, over its executor:

- ``POST /v1/models/<name>[/versions/<v>]:predict|classify|regress``: the answer TF
  Serving gives, or ``{"error": ...}`` with TF Serving's status (400, 404);
- ``GET /v1/models/<name>[/versions/<v>]``: the model status (``model_version_status``,
  every version ``AVAILABLE``), which scripts poll before their first request.

It binds 127.0.0.1 on a free port (a worker each: several workers cannot share AWS's fixed
8501), and runs in a thread of the worker; requests from the script are answered while the
worker waits on the script. ``answer`` is the same code path without HTTP, for the
``input_handler``/``output_handler`` pair, whose TF Serving call eikit makes itself.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Optional, Tuple

from eikit.errors import EikitError, client_message, status_of
from eikit_tensorflow.executor import Executor
from eikit_tensorflow.invocation import dumps, parse_tfs_json, split_tfs_path

log = logging.getLogger(__name__)

# (status, answer) of each TF Serving call: the pipeline keeps the last one per request.
Observer = Callable[[int], None]


def answer(
    executor: Executor,
    model: str,
    version: Optional[str],
    method: Optional[str],
    body: bytes,
) -> Tuple[int, Dict[str, Any]]:
    """One TF Serving REST call: (status, JSON answer), errors as TF Serving sends them."""
    try:
        number: Optional[int] = None
        if version is not None:
            if not (version.isdigit() and version.isascii()):
                return 404, {
                    "error": "Servable not found for request: version %r of model %s is not a "
                    "number (versions: %s)" % (version, model, _versions(executor, model))
                }
            number = int(version)
        return 200, executor.request(model, number, method or "predict", parse_tfs_json(body))
    except EikitError as exc:
        return exc.status, {"error": client_message(exc)}
    except Exception as exc:
        log.exception("TF Serving request to %s failed", model)
        return status_of(exc), {"error": "%s: %s" % (type(exc).__name__, exc)}


def _versions(executor: Executor, model: str) -> str:
    return ", ".join(str(v) for v in executor.models().get(model, [])) or "none"


def model_status(executor: Executor, model: str, version: Optional[str]) -> Tuple[int, Dict]:
    served = executor.models()
    if model not in served:
        return 404, {
            "error": "Could not find any versions of model %s (models: %s)"
            % (model, ", ".join(sorted(served)))
        }
    versions = served[model]
    if version is not None:
        if not (version.isdigit() and int(version) in versions):
            return 404, {
                "error": "Could not find version %s of model %s (versions: %s)"
                % (version, model, _versions(executor, model))
            }
        versions = [int(version)]
    return 200, {
        "model_version_status": [
            {
                "version": str(v),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for v in sorted(versions, reverse=True)
        ]
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("local TF Serving REST: " + format, *args)

    def _send(self, status: int, payload: Dict[str, Any]) -> None:
        data = dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            model, version, method = split_tfs_path(self.path)
        except EikitError as exc:
            self._send(404, {"error": client_message(exc)})
            return
        if method is not None:
            self._send(404, {"error": "Malformed request: GET %s" % self.path})
            return
        self._send(*model_status(self.server.executor, model, version))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            model, version, method = split_tfs_path(self.path)
        except EikitError as exc:
            self._send(404, {"error": client_message(exc)})
            return
        status, payload = answer(self.server.executor, model, version, method, body)
        if self.server.observer is not None:
            self.server.observer(status)
        self._send(status, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, executor: Executor, observer: Optional[Observer]) -> None:
        self.executor = executor
        self.observer = observer
        super().__init__(("127.0.0.1", 0), _Handler)


class LocalRestEndpoint:
    """The endpoint, started in a daemon thread; ``port`` is where it listens."""

    def __init__(self, executor: Executor, observer: Optional[Observer] = None) -> None:
        self._server = _Server(executor, observer)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tfs-rest", daemon=True
        )
        self._thread.start()
        log.info("TF Serving REST API for scripts at http://localhost:%d/v1/models/", self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


__all__ = ["LocalRestEndpoint", "answer", "model_status", "json"]
