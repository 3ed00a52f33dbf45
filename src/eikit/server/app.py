"""Routes of the SageMaker hosting contract, as a plain ASGI app.

Plain ASGI rather than a framework: four routes do not need a router, and measured here a
framework's request object and routing cost as much per request as the model does on
small models. Routes parse and reply; the pool and the workers do the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Optional, Tuple

from eikit.errors import (
    BadRequest,
    EikitError,
    InternalError,
    ModelLoadFailed,
    ModelNotReady,
    PayloadTooLarge,
    code_of,
    error_body,
    status_of,
)
from eikit.server import protocol
from eikit.server.boot import Boot
from eikit.settings import Settings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = b"application/json"


async def reply(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes = JSON_TYPE,
    extra: Optional[List[Tuple[bytes, bytes]]] = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


CLOSE = [(b"connection", b"close")]


async def reply_error(send: Send, exc: BaseException) -> None:
    message = exc.message if isinstance(exc, EikitError) else "internal error"
    # A refused body is not read: close rather than read it all to reach the next request.
    extra = CLOSE if isinstance(exc, PayloadTooLarge) else None
    await reply(send, status_of(exc), error_body(message, code_of(exc)), extra=extra)


class App:
    def __init__(self, settings: Settings, boot: Optional[Boot] = None) -> None:
        self.settings = settings
        self.boot = boot or Boot(settings)
        self.routes: Dict[Tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("GET", "/ping"): self.ping,
            ("POST", "/invocations"): self.invocations,
            ("GET", "/execution-parameters"): self.execution_parameters,
        }
        for (method, path), route in list(self.routes.items()):
            if method == "GET":  # HEAD answers as GET; uvicorn leaves the body out
                self.routes[("HEAD", path)] = route
        allowed: Dict[str, List[str]] = {}
        for method, path in self.routes:
            allowed.setdefault(path, []).append(method)
        self.allow = {
            path: ", ".join(sorted(methods)).encode() for path, methods in allowed.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.routes.get((scope["method"], scope["path"]))
            if route is None:
                await self.not_found(scope, send)
                return
            try:
                await route(scope, receive, send)
            except Exception:  # answer a bug in JSON too, not with uvicorn's text/plain 500
                log.exception("%s %s failed", scope["method"], scope["path"])
                await reply_error(send, InternalError("internal error"))
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.boot.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.boot.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def not_found(self, scope: Scope, send: Send) -> None:
        allow = self.allow.get(scope["path"])
        if allow is not None:
            message = "%s not allowed on %s; allowed: %s" % (
                scope["method"],
                scope["path"],
                allow.decode(),
            )
            body = error_body(message, "method_not_allowed")
            await reply(send, 405, body, extra=[(b"allow", allow)])
        else:
            await reply(send, 404, error_body("no route %s" % scope["path"], "not_found"))

    # --- routes --------------------------------------------------------------

    async def ping(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers from memory: never waits on a worker."""
        pool = self.boot.pool
        if pool is not None and pool.healthy:
            await reply(send, 200, b"")
            return
        code = ModelLoadFailed.code if self.boot.failed else ModelNotReady.code
        await reply(send, 503, error_body(self.boot.status(), code))

    async def execution_parameters(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {
            "MaxConcurrentTransforms": self.boot.worker_count or 1,
            "BatchStrategy": self.settings.batch_strategy,
            "MaxPayloadInMB": int(self.settings.max_payload_in_mb),
        }
        await reply(send, 200, json.dumps(body).encode())

    async def invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Headers stay bytes: the worker parses them only if the script asks for them.
        headers = scope["headers"]
        content_type = accept = b""
        length = -1
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        try:
            body = await self._read_body(receive, length)
            pool = self.boot.pool
            if pool is None:
                failed = self.boot.failed
                raise (ModelLoadFailed if failed else ModelNotReady)(self.boot.status())
            meta = protocol.request_meta(content_type, accept, protocol.join_headers(headers))
            response_meta, answer = await pool.submit(meta, body)
        except asyncio.CancelledError:
            # Only shutdown cancels a request (EIKIT_GRACEFUL_TIMEOUT ran out): answer in
            # JSON rather than let uvicorn send its text/plain 500.
            message = "server shut down before the request finished (EIKIT_GRACEFUL_TIMEOUT=%gs)"
            await reply_error(send, ModelNotReady(message % self.settings.graceful_timeout))
            return
        except Exception as exc:
            if not isinstance(exc, EikitError):
                log.exception("invocation failed in the frontend")
                exc = InternalError("internal error")
            await reply_error(send, exc)
            return
        status, out_type, extra = protocol.parse_response_meta(response_meta)
        await reply(send, status, answer, out_type, extra)

    async def _read_body(self, receive: Receive, length: int) -> bytes:
        limit = self.settings.max_payload_bytes
        if length > limit:
            raise PayloadTooLarge(self._too_large(length))
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequest("client disconnected before its body arrived")
        body = message.get("body", b"")
        if not message.get("more_body", False):
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":
                raise BadRequest("client disconnected before its body arrived")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(self._too_large(size))
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, size: int) -> str:
        return "payload of %d bytes exceeds SAGEMAKER_MAX_PAYLOAD_IN_MB=%g" % (
            size,
            self.settings.max_payload_in_mb,
        )
