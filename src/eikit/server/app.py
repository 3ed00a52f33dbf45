"""Routes of the SageMaker hosting contract, as a plain ASGI app.

Plain ASGI rather than a framework: four routes do not need a router, and measured here a
framework's request object and routing cost as much per request as the model does on
small models. Routes parse and reply; the pool and the workers do the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from typing import Awaitable, Callable, Dict, List, Optional, Tuple, cast

from eikit import logs
from eikit.errors import (
    BadRequest,
    EikitError,
    InternalError,
    ModelLoadFailed,
    ModelNotReady,
    PayloadTooLarge,
    error_body,
)
from eikit.server import ids, protocol
from eikit.server.boot import Boot
from eikit.server.metrics import Metrics
from eikit.server.model_routes import INVOKE, PREFIX, ModelRoutes
from eikit.server.replies import (
    JSON_TYPE,
    Message,
    Receive,
    Scope,
    Send,
    error_answer,
    header_text,
    reply,
    reply_error,
)
from eikit.settings import Settings

log = logging.getLogger(__name__)
access = logging.getLogger("eikit.access")

TARGET_HEADER = b"x-amzn-sagemaker-target-model"
NO_TARGET = (
    "this is a multi-model endpoint: name the model with the X-Amzn-SageMaker-Target-Model "
    "header, or POST /models/{name}/invoke"
)


def scan_headers(
    headers: List[Tuple[bytes, bytes]], target: Optional[str]
) -> Tuple[bytes, bytes, int, Optional[str]]:
    """What an invocation needs of its headers: Content-Type, Accept, Content-Length (-1
    when missing) and the target model (``target`` when the path named it)."""
    content_type = accept = b""
    length = -1
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"accept":
            accept = value
        elif name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == TARGET_HEADER and target is None:
            target = header_text(value)
    return content_type, accept, length, target


# status, Content-Type, body, extra headers, request id: an answer the direct route writes
Answer = Callable[[int, bytes, bytes, List[Tuple[bytes, bytes]], bytes], None]


class _Recorder:
    """``send`` that remembers the status and body size, for the access log."""

    __slots__ = ("send", "status", "size")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 0
        self.size = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.size += len(message.get("body", b""))
        await self.send(message)


Route = Callable[[Scope, Receive, Send, bytes], Awaitable[None]]


class App:
    def __init__(self, settings: Settings, boot: Optional[Boot] = None) -> None:
        self.settings = settings
        self.metrics = Metrics(self._gauges) if settings.metrics else None
        self.boot = boot or Boot(settings, self.metrics)
        self.access_log = settings.access_log
        self.routes: Dict[Tuple[str, str], Route] = {
            ("GET", "/ping"): self.ping,
            ("POST", "/invocations"): self.invocations,
            ("GET", "/execution-parameters"): self.execution_parameters,
        }
        if self.metrics is not None:
            self.routes[("GET", "/metrics")] = self.metrics_route
        self.models: Optional[ModelRoutes] = None
        if settings.multi_model:
            self.models = ModelRoutes(self)
            self.routes[("GET", "/models")] = self.models.collection
            self.routes[("POST", "/models")] = self.models.collection
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
            request_id = ids.for_request(scope["headers"])
            # This request's task only: its log lines say request=ID.
            logs.request_id.set(request_id.decode("latin-1"))
            if self.access_log:
                await self._logged(scope, receive, send, request_id)
            else:
                await self._route(scope, receive, send, request_id)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send, request_id: bytes) -> None:
        route = self.routes.get((scope["method"], scope["path"]))
        try:
            if route is not None:
                await route(scope, receive, send, request_id)
            elif self.models is not None and scope["path"].startswith(PREFIX):
                if not await self.models.member(scope, receive, send, request_id):
                    await self.not_allowed(scope, send, request_id)
            else:
                await self.not_found(scope, send, request_id)
        except Exception:  # answer a bug in JSON too, not with uvicorn's text/plain 500
            log.exception("%s %s failed", scope["method"], scope["path"])
            # uvicorn refuses a second response start (RuntimeError) if the bug came after
            # the answer began: then there is nothing more to tell the client.
            with contextlib.suppress(RuntimeError):
                await reply_error(send, request_id, InternalError("internal error"))

    async def _logged(self, scope: Scope, receive: Receive, send: Send, request_id: bytes) -> None:
        """EIKIT_ACCESS_LOG: one line per request, once it is answered (or abandoned)."""
        recorder = _Recorder(send)
        started = time.perf_counter()
        try:
            await self._route(scope, receive, recorder, request_id)
        finally:
            client = scope.get("client") or ("-", 0)
            access.info(
                '%s "%s %s" %s %d %.1fms',
                client[0],
                scope["method"],
                logs.printable(scope["path"])[:200],
                recorder.status or "-",
                recorder.size,
                (time.perf_counter() - started) * 1000,
            )

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

    async def not_allowed(self, scope: Scope, send: Send, request_id: bytes) -> None:
        """A method that ``/models/{name}`` (or its ``/invoke``) does not take."""
        allow = b"POST" if scope["path"].endswith(INVOKE) else b"DELETE, GET, HEAD"
        message = "%s not allowed on a model; allowed: %s" % (scope["method"], allow.decode())
        body = error_body(message, "method_not_allowed")
        await reply(send, request_id, 405, body, extra=[(b"allow", allow)])

    async def not_found(self, scope: Scope, send: Send, request_id: bytes) -> None:
        allow = self.allow.get(scope["path"])
        if allow is not None:
            message = "%s not allowed on %s; allowed: %s" % (
                scope["method"],
                scope["path"],
                allow.decode(),
            )
            body = error_body(message, "method_not_allowed")
            await reply(send, request_id, 405, body, extra=[(b"allow", allow)])
        else:
            path = logs.printable(scope["path"])[:200]
            await reply(send, request_id, 404, error_body("no route %s" % path, "not_found"))

    # --- routes --------------------------------------------------------------

    async def ping(self, scope: Scope, receive: Receive, send: Send, request_id: bytes) -> None:
        """Answers from memory: never waits on a worker."""
        if self.boot.healthy:
            await reply(send, request_id, 200, b"")
            return
        code = ModelLoadFailed.code if self.boot.failed else ModelNotReady.code
        await reply(send, request_id, 503, error_body(self.boot.status(), code))

    async def execution_parameters(
        self, scope: Scope, receive: Receive, send: Send, request_id: bytes
    ) -> None:
        body = {
            "MaxConcurrentTransforms": self.boot.worker_count or 1,
            "BatchStrategy": self.settings.batch_strategy,
            "MaxPayloadInMB": int(self.settings.max_payload_in_mb),
        }
        await reply(send, request_id, 200, json.dumps(body).encode())

    async def metrics_route(
        self, scope: Scope, receive: Receive, send: Send, request_id: bytes
    ) -> None:
        assert self.metrics is not None
        body, content_type = self.metrics.render()
        await reply(send, request_id, 200, body, content_type.encode("latin-1"))

    def _gauges(self) -> Dict[str, float]:
        if self.boot.registry is not None:
            return self.boot.registry.gauges()
        pool = self.boot.pool
        return pool.gauges() if pool is not None else {}

    async def invocations(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: bytes,
        target: Optional[str] = None,
    ) -> None:
        """Answer one invocation through ASGI. ``target``: the model named by the path
        (multi-model), which the ``X-Amzn-SageMaker-Target-Model`` header names otherwise.
        The body is read inline when it came in one piece (each coroutine level costs)."""
        started = time.perf_counter()
        # Headers stay bytes: the worker parses them only if the script asks for them.
        headers = scope["headers"]
        content_type, accept, length, target = scan_headers(headers, target)
        times = [math.nan, math.nan]  # handed to the pool, answered by it
        try:
            limit = self.settings.max_payload_bytes
            message = await receive() if length <= limit else None
            if (
                message is not None
                and message["type"] == "http.request"
                and not message.get("more_body", False)
                and len(message.get("body", b"")) <= limit
            ):
                body = message.get("body", b"")
            else:
                body = await self.read_body(receive, length, first=message)
            status, out_type, extra, answer, timings = await self._predict(
                request_id, headers, content_type, accept, body, target, times
            )
        except (Exception, asyncio.CancelledError) as exc:
            status, answer, extra_error = error_answer(self._invocation_error(exc))
            await reply(send, request_id, status, answer, extra=extra_error)
            self._measured(status, started, times, protocol.NOT_TIMED)
            return
        try:
            await reply(send, request_id, status, answer, out_type, extra)
        finally:
            self._measured(status, started, times, timings)

    def direct_route(self) -> Optional[Callable[..., Awaitable[None]]]:
        """The handler for ``POST /invocations`` without the ASGI cycle (eikit.server.http
        writes its answer in one go), where this server takes it: single-model, no access
        log (whose line needs the route's view of the exchange)."""
        if self.settings.multi_model or self.access_log:
            return None
        return self.direct

    async def direct(
        self, headers: List[Tuple[bytes, bytes]], body: protocol.Body, answer: Answer
    ) -> None:
        """``invocations`` for a request the protocol read whole, answered through ``answer``."""
        started = time.perf_counter()
        request_id = ids.for_request(headers)
        logs.request_id.set(request_id.decode("latin-1"))  # this task's log lines
        content_type, accept, _, target = scan_headers(headers, None)
        times = [math.nan, math.nan]
        try:
            status, out_type, extra, out, timings = await self._predict(
                request_id, headers, content_type, accept, body, target, times
            )
        except (Exception, asyncio.CancelledError) as exc:
            status, out, extra_error = error_answer(self._invocation_error(exc))
            answer(status, JSON_TYPE, out, extra_error or [], request_id)
            self._measured(status, started, times, protocol.NOT_TIMED)
            return
        answer(status, out_type, out, extra, request_id)
        self._measured(status, started, times, timings)

    def _invocation_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, asyncio.CancelledError):
            # Only shutdown cancels a request (EIKIT_GRACEFUL_TIMEOUT ran out): answer in
            # JSON rather than let uvicorn send its text/plain 500.
            message = "server shut down before the request finished (EIKIT_GRACEFUL_TIMEOUT=%gs)"
            return ModelNotReady(message % self.settings.graceful_timeout)
        if not isinstance(exc, EikitError):
            log.exception("invocation failed in the frontend", exc_info=exc)
            return InternalError("internal error")
        return exc

    async def _predict(
        self,
        request_id: bytes,
        headers: List[Tuple[bytes, bytes]],
        content_type: bytes,
        accept: bytes,
        body: protocol.Body,
        target: Optional[str],
        times: List[float],
    ) -> Tuple[int, bytes, List[Tuple[bytes, bytes]], bytes, Tuple[float, float, float]]:
        """Send the request to a worker: its status, Content-Type, extra headers, body and
        phase timings. ``times`` gets when the pool took it and when it answered."""
        meta = protocol.request_meta(
            request_id, content_type, accept, protocol.join_headers(headers)
        )
        registry = self.boot.registry
        if registry is None:
            pool = self.boot.pool
            if pool is None:
                failed = self.boot.failed
                raise (ModelLoadFailed if failed else ModelNotReady)(self.boot.status())
            times[0] = time.perf_counter()
            # The pool hands the body to a worker as it is (link.Worker.send takes Pieces).
            response_meta, answer = await pool.submit(meta, cast(bytes, body))
        else:
            if not target:
                raise BadRequest(NO_TARGET)
            async with registry.use(target) as model:
                times[0] = time.perf_counter()
                response_meta, answer = await model.submit(meta, cast(bytes, body))
        times[1] = time.perf_counter()
        status, out_type, extra, timings = protocol.parse_response_meta(response_meta)
        return status, out_type, extra, answer, timings

    def _measured(
        self,
        status: int,
        started: float,
        times: List[float],
        timings: Tuple[float, float, float],
    ) -> None:
        """One invocation's sample: its status, and its time in total, waiting and reaching
        a worker, and in each phase of the worker (NaN where it never got there)."""
        if self.metrics is None:
            return
        decode, predict, encode = timings
        worker = decode + predict + encode  # NaN unless all three ran
        if worker != worker:
            worker = sum(value for value in timings if value == value)
        total = time.perf_counter() - started
        queue = times[1] - times[0] - worker
        self.metrics.request((status, total, queue, decode, predict, encode))

    async def read_body(
        self,
        receive: Receive,
        length: int,
        limit: Optional[int] = None,
        first: Optional[Message] = None,
    ) -> bytes:
        """The request body, at most ``limit`` bytes (default: the payload limit), else 413.
        ``first``: the first message, when the caller has received it already."""
        if limit is None:
            limit = self.settings.max_payload_bytes
        if length > limit:
            raise PayloadTooLarge(self._too_large(length, limit))
        message = first if first is not None else await receive()
        if message["type"] != "http.request":
            raise BadRequest("client disconnected before its body arrived")
        body = message.get("body", b"")
        if len(body) > limit:  # a chunked body uvicorn had buffered whole before we asked
            raise PayloadTooLarge(self._too_large(len(body), limit))
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
                raise PayloadTooLarge(self._too_large(size, limit))
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, size: int, limit: int) -> str:
        if limit != self.settings.max_payload_bytes:
            return "payload of %d bytes exceeds this route's %d bytes" % (size, limit)
        return "payload of %d bytes exceeds SAGEMAKER_MAX_PAYLOAD_IN_MB=%g" % (
            size,
            self.settings.max_payload_in_mb,
        )
