"""Limits on what one HTTP client can hold: bytes of a request head, time to send it and its
body, idle time, and open connections.

uvicorn's httptools protocol has none of these: a client sending one header byte per second,
or nothing, kept its connection forever; an unterminated header was buffered without limit;
idle connections could take every file descriptor, so a worker could not be respawned.
``LimitedProtocol`` is that protocol with the limits added. It is uvicorn's own class,
extended through the callbacks httptools calls, so the request path is uvicorn's; the limits
cost a counter and a state change per request. One watchdog timer per server, not one per
connection or request, enforces the deadlines.

Every refusal is answered as JSON where an answer is possible, then the connection is closed
after the client had time to read it: the server stops writing (FIN) but keeps reading, and
discards, what the client still sends (``_linger``). Closing with unread data in the socket
would make the kernel send a reset, which can destroy the answer before the client reads it.

uvicorn internals this relies on are checked by ``check_uvicorn`` at start-up; the tested
uvicorn range is pinned in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import http
import logging
import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Set, Tuple, Type

import httptools
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from eikit import logs
from eikit.errors import ConfigurationError, error_body
from eikit.server import direct_route, ids, protocol
from eikit.settings import Settings

log = logging.getLogger(__name__)

# How a connection's request stands. IDLE: no byte of a request yet (fresh or between
# requests). HEAD: request line and headers arriving. BODY: the declared body arriving.
# LINGER: answered and closing; what arrives is discarded. CLOSED: gone.
IDLE, HEAD, BODY, LINGER, CLOSED = range(5)

# Headers that take a request off the one-call path (LimitedProtocol._one_request).
_UNUSUAL = re.compile(rb"\r\n(?:transfer-encoding|upgrade|expect|connection:[^\r]*upgrade)")

LINGER_SECONDS = 5.0  # longest a closing connection waits for the client to stop sending
REJECT_LINGER = 16  # refused connections (over the limit) that may linger at once
FD_RESERVE = 32  # descriptors the frontend keeps besides connections: listener, loop, logs
FD_PER_WORKER = 4  # a worker's socket, plus a respawn's socketpair and exec pipe
LOG_EVERY = 10.0  # seconds between two warnings of one kind
BODY_WIRE_FACTOR = 4  # chunked framing may add this much to a body before it is refused
HEAD_END = b"\r\n\r\n"
STATUS_LINE = b"HTTP/1.1 "  # how uvicorn's responses begin (its STATUS_LINE table)
CONTINUE = b"HTTP/1.1 100 "
BODY_COPY_LIMIT = 64 * 1024  # a larger body is not copied to join its head: two buffers

UVICORN_HOOKS = (
    "connection_made",
    "connection_lost",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "on_body",
    "send_400_response",
    "shutdown",
    "on_url",
    "on_header",
    "_unset_keepalive_if_required",
)


class Limits(NamedTuple):
    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    keep_alive_timeout: float
    max_connections: int
    max_body_wire_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, max_connections: int) -> Limits:
        wire = (settings.max_payload_bytes + settings.max_header_bytes) * BODY_WIRE_FACTOR
        return cls(
            settings.max_header_bytes,
            settings.header_timeout,
            settings.body_timeout,
            settings.keep_alive_timeout,
            max_connections,
            wire + 65536,
        )


def check_uvicorn() -> None:
    """Refuse to start on a uvicorn whose httptools protocol lacks what this module extends."""
    import uvicorn

    missing = [
        name for name in UVICORN_HOOKS if not callable(getattr(HttpToolsProtocol, name, None))
    ]
    if not hasattr(httptools_impl, "RequestResponseCycle"):
        missing.append("RequestResponseCycle")
    if missing:
        raise ConfigurationError(
            "uvicorn %s is not supported: its httptools protocol lacks %s; install the "
            "version range eikit pins (pyproject.toml)" % (uvicorn.__version__, ", ".join(missing))
        )


def connection_cap(settings: Settings) -> int:
    """EIKIT_MAX_CONNECTIONS, lowered if needed so that connections cannot take the file
    descriptors the frontend needs to respawn a worker."""
    wanted = settings.max_connections
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    workers = settings.workers or os.cpu_count() or 1
    reserve = FD_RESERVE + FD_PER_WORKER * workers + REJECT_LINGER
    if wanted <= soft - reserve:
        return wanted
    cap = max(1, soft - reserve)
    log.warning(
        "EIKIT_MAX_CONNECTIONS=%d lowered to %d: the open-files limit (ulimit -n) is %d and "
        "%d descriptors are kept for the server and %d worker(s)",
        wanted,
        cap,
        soft,
        reserve,
        workers,
    )
    return cap


def response(status: int, message: str, code: str, request_id: bytes) -> bytes:
    """A whole JSON error response that closes the connection."""
    body = error_body(message, code)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    head = "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        phrase,
        len(body),
    )
    return b"%s%s: %s\r\nconnection: close\r\n\r\n%s" % (
        head.encode("ascii"),
        ids.HEADER,
        request_id,
        body,
    )


class Watchdog:
    """One timer per server that enforces every connection's deadline, and the state the
    connections of one server share."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        shortest = min(
            limits.header_timeout, limits.body_timeout, limits.keep_alive_timeout, LINGER_SECONDS
        )
        self.interval = min(1.0, max(0.02, shortest / 4))
        self.timer: Optional[asyncio.TimerHandle] = None
        self.rejected = 0  # refused connections (over the limit) not yet closed
        self.last_warning: Dict[str, float] = {}
        self.quiet: Dict[str, int] = {}

    def watch(self, loop: asyncio.AbstractEventLoop, connections: Set[Any]) -> None:
        if self.timer is None:
            self.timer = loop.call_later(self.interval, self.tick, loop, connections)

    def tick(self, loop: asyncio.AbstractEventLoop, connections: Set[Any]) -> None:
        self.timer = None
        now = loop.time()
        for conn in list(connections):
            if isinstance(conn, LimitedProtocol):
                try:
                    conn.check(now)
                except Exception:
                    log.exception("connection watchdog failed; closing the connection")
                    conn.abort()
        if connections:
            self.watch(loop, connections)

    def warn(self, now: float, kind: str, message: str, *args: Any) -> None:
        """Log a refusal at most once per LOG_EVERY seconds per kind: a flood of hostile
        clients must not flood the log."""
        if now - self.last_warning.get(kind, -LOG_EVERY) < LOG_EVERY:
            self.quiet[kind] = self.quiet.get(kind, 0) + 1
            return
        self.last_warning[kind] = now
        more = self.quiet.pop(kind, 0)
        if more:
            message += " (and %d more since the last such warning)" % more
        log.warning(message, *args)


class _Transport:
    """The connection's transport as uvicorn's request cycle sees it: ``close`` lets an unread
    request body drain first, so the answer reaches the client; and a response's head goes
    out with the body's first bytes, in one write (uvicorn writes them apart: a second
    send, and a second TCP segment, per answer).

    The head is held until the next write, the end of the response, or a close; an interim
    ``100 Continue`` is not held (the client waits for it before it sends the body)."""

    __slots__ = (
        "_protocol",
        "_real",
        "_held",
        "get_extra_info",
        "pause_reading",
        "resume_reading",
    )

    def __init__(self, real: asyncio.Transport, protocol: LimitedProtocol) -> None:
        self._protocol = protocol
        self._real = real
        self._held: Optional[bytes] = None
        self.get_extra_info = real.get_extra_info
        self.pause_reading = real.pause_reading
        self.resume_reading = real.resume_reading

    def write(self, data: bytes) -> None:
        real = self._real
        # A client that left while its request ran (pipelined ones are not all told): uvloop
        # raises on a write to a closed transport, and the answer has nobody to go to.
        if real.is_closing():
            return
        held = self._held
        if held is not None:
            self._held = None
            if len(data) > BODY_COPY_LIMIT:
                real.writelines((held, data))
            else:
                real.write(held + data)
        elif data.startswith(STATUS_LINE) and not data.startswith(CONTINUE):
            self._held = data  # a response head: its body follows
        else:
            real.write(data)

    def flush(self) -> None:
        """Send a held head (its response ended without a body: HEAD, 204, 304)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._real.is_closing():
                self._real.write(held)

    def close(self) -> None:
        self.flush()
        self._protocol.close_after_response()

    def is_closing(self) -> bool:
        return self._protocol.phase >= LINGER or self._real.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else a uvicorn version may use
        return getattr(self._real, name)


class LimitedProtocol(HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol with the limits of one server (``limits``, ``watchdog``:
    set on the subclass ``protocol_class`` makes)."""

    limits: Limits
    watchdog: Watchdog
    direct: Optional[direct_route.Route] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routed = direct_route.Exchange()  # the direct route's state on this connection
        self.phase = IDLE
        self.since = 0.0  # when the current phase's deadline started
        self.head_bytes = 0
        self.head_tail = b""  # the head's last bytes so far: its blank line may straddle reads
        self.body_bytes = 0
        self.body_remaining: Optional[int] = 0  # of the current request, when known
        self.upgrade_body = False  # reading an ignored Upgrade request's body ourselves
        self.known_length: Optional[int] = None  # the body's length, when read before parsing
        self.rejected = False
        self.real: Optional[asyncio.Transport] = None

    # --- connection ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.real = transport
        self.transport = _Transport(transport, self)
        self.since = now = self.loop.time()
        watchdog = self.watchdog
        watchdog.watch(self.loop, self.connections)
        open_now = len(self.connections) - watchdog.rejected
        if open_now > self.limits.max_connections:
            self._reject(now, open_now - 1)

    def _reject(self, now: float, open_now: int) -> None:
        """Over EIKIT_MAX_CONNECTIONS: answer 503 at once (before the request is read) and
        close. Only a few refused connections linger; past that they are closed at once, so
        a flood of them cannot hold descriptors either."""
        watchdog = self.watchdog
        self.rejected = True
        watchdog.rejected += 1
        limit = self.limits.max_connections
        message = "too many open connections (EIKIT_MAX_CONNECTIONS=%d); retry later" % limit
        watchdog.warn(
            now,
            "connections",
            "refused a connection: %d open, EIKIT_MAX_CONNECTIONS=%d",
            open_now,
            limit,
        )
        answer = response(503, message, "too_many_connections", ids.new())
        self.real.write(answer)  # type: ignore[union-attr]
        if watchdog.rejected > REJECT_LINGER:
            self.abort()
        else:
            self._linger()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.phase = CLOSED
        if self.rejected:
            self.rejected = False
            self.watchdog.rejected -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Hand the parser one request's part of the read at a time: a head up to its blank
        line, a body up to its declared length. Each head is then counted from its own
        first byte, even when a pipelined request ends in the same read."""
        if self.routed.busy:
            self._defer(data)
            return
        if self.phase == IDLE and self._one_request(data):
            return
        view = memoryview(data)
        pos, size = 0, len(data)
        while pos < size and self.phase < LINGER:
            if self.routed.busy:  # a request of this read went direct: the rest waits
                self._defer(bytes(view[pos:]))
                return
            if self.phase == BODY:
                pos = self._take_body(view, pos)
            else:
                pos = self._take_head(data, view, pos)

    def _one_request(self, data: bytes) -> bool:
        """The common read, in one parser call: exactly one whole request, its head within
        the limit and its body as long as its one Content-Length says (or no body), nothing
        after it, no Upgrade, Expect or Transfer-Encoding. Anything else: False, and the
        read is taken apart as usual."""
        end = data.find(HEAD_END, 0, self.limits.max_header_bytes)
        if end == -1:
            return False
        end += len(HEAD_END)
        head = data[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at == -1:
            length = 0
        else:
            start = at + 17
            stop = head.find(b"\r\n", start)
            value = head[start:stop].strip()
            if not value.isdigit() or head.find(b"\r\ncontent-length:", stop) != -1:
                return False
            length = int(value)
        if end + length != len(data) or _UNUSUAL.search(head) is not None:
            return False
        self.phase = HEAD
        self.since = self.loop.time()
        self.head_bytes = end
        self.head_tail = b""
        self.known_length = length
        direct = self.direct
        if (
            direct is not None
            and data.startswith(direct_route.REQUEST_LINE)
            and length <= direct.max_body
            and (self.cycle is None or self.cycle.response_complete)
        ):
            close = direct_route.closes(head)
            self.routed.pending = close is not None
            self.routed.close = bool(close)
        self._feed(data)
        self.known_length = None  # used, or the parser refused the head
        self.routed.pending = False
        self.body_bytes += length
        return True

    def _direct_after_head(self, length: Optional[int]) -> bool:
        """Whether a request whose head the parser just read takes the direct route: what
        ``_one_request`` checks, from the parsed head."""
        direct = self.direct
        if (
            direct is None
            or self.routed.busy
            or length is None
            or length > direct.max_body
            or self.url != b"/invocations"
            or self.expect_100_continue
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.pipeline
        ):
            return False
        parser = self.parser
        if parser.get_method() != b"POST" or parser.get_http_version() != "1.1":
            return False
        if parser.should_upgrade():
            return False
        close = direct_route.closes_headers(self.headers)
        if close is None:
            return False
        self.routed.close = close
        return True

    def _defer(self, data: bytes) -> None:
        """A read while a direct request runs (a pipelining client): parsed once it is
        answered, so answers keep their order; past a head's worth, reading pauses."""
        routed = self.routed
        routed.deferred.append(data)
        routed.deferred_bytes += len(data)
        if routed.deferred_bytes > self.limits.max_header_bytes:
            self.flow.pause_reading()

    def _take_head(self, data: bytes, view: memoryview, pos: int) -> int:
        if self.phase == IDLE:
            self.phase = HEAD
            self.since = self.loop.time()
            self.head_bytes = 0
            self.head_tail = b""
        limit = self.limits.max_header_bytes
        room = limit - self.head_bytes
        size = len(data)
        end = -1
        if self.head_tail:  # the blank line may straddle two reads
            found = (self.head_tail + data[pos : pos + 3]).find(HEAD_END)
            if found != -1:
                end = pos + found + len(HEAD_END) - len(self.head_tail)
        if end == -1:
            found = data.find(HEAD_END, pos, pos + room)
            if found != -1:
                end = found + len(HEAD_END)
        if end != -1:
            self.head_bytes += end - pos
            self._feed(view[pos:end])
            return end
        if size - pos <= room:
            self.head_bytes += size - pos
            self.head_tail = (self.head_tail + data[pos:size])[-(len(HEAD_END) - 1) :]
            self._feed(view[pos:size])
            return size
        # No blank line within the limit. (A head ending in bare newlines may still end in
        # what the limit lets through: then the rest is read as what follows it.)
        if room > 0:
            self._feed(view[pos : pos + room])
        self.head_bytes = limit
        if self.phase == HEAD:
            self._refuse(
                431,
                "request head exceeds EIKIT_MAX_HEADER_BYTES=%d bytes" % limit,
                "headers_too_large",
            )
            return size
        return pos + room

    def _take_body(self, view: memoryview, pos: int) -> int:
        size = len(view)
        remaining = self.body_remaining
        end = size
        if remaining is not None and 0 < remaining < size - pos:
            end = pos + remaining  # the request ends in this read; what follows is the next
        self.body_bytes += end - pos
        if self.body_bytes > self.limits.max_body_wire_bytes:
            self._refuse(413, "request body framing exceeds the payload limit", "payload_too_large")
            return size
        if self.upgrade_body:
            self._upgrade_body(bytes(view[pos:end]))
        else:
            self._feed(view[pos:end])
        return end

    def _feed(self, data: Any) -> None:
        """uvicorn's ``data_received``, without its log line per bad request (a hostile
        client must not flood the log) and its text/plain 400."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # Nothing to upgrade to (no websockets): the request is served as plain HTTP, as
            # RFC 9110 lets a server ignore Upgrade, and whatever follows it is read as HTTP.
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            if 0 < offset < len(data) and self.phase < LINGER:
                self.data_received(bytes(data[offset:]))
        except httptools.HttpParserError as exc:
            self._refuse(400, "invalid HTTP request: %s" % exc, "bad_request")

    def _upgrade_body(self, chunk: bytes) -> None:
        """The body of a request with ``Connection: Upgrade``, which httptools leaves
        unparsed (it would be the upgraded protocol's): given to the request here."""
        if chunk:
            self.on_body(chunk)
        if self.body_remaining == 0:
            self.upgrade_body = False
            self.on_message_complete()

    # --- httptools callbacks (per request: keep them cheap) -------------------

    def on_message_begin(self) -> None:
        if self.routed.pending:  # no ASGI scope: the direct route reads the headers only
            self.url = b""
            self.headers: List[Tuple[bytes, bytes]] = []
            self.expect_100_continue = False
        else:
            super().on_message_begin()
        if self.phase == IDLE:  # only where a head did not end on its blank line (bare LFs)
            self.phase = HEAD
            self.since = self.loop.time()
            self.head_bytes = 0
            self.head_tail = b""

    def on_headers_complete(self) -> None:
        # The body's length, so the read can be cut where this request ends: None when
        # chunked (its end is known only to the parser), 0 with no body.
        remaining = self.known_length  # _one_request read it already
        if remaining is None:
            remaining = 0
            for name, value in self.headers:
                if name == b"content-length":
                    remaining = int(value) if value.isdigit() else None
                elif name == b"transfer-encoding":
                    remaining = None
                    break
            # A body in many reads (a large one) takes the direct route too: its pieces go
            # to the worker as they came, never joined or copied again here.
            self.routed.pending = self._direct_after_head(remaining)
        else:
            self.known_length = None
        if self.routed.pending:
            self.routed.body = []
        else:
            super().on_headers_complete()
        self.body_remaining = remaining
        if self.phase == HEAD:
            self.phase = BODY
            self.since = self.loop.time()
            self.body_bytes = 0

    def on_body(self, body: bytes) -> None:
        if self.body_remaining is not None:
            self.body_remaining -= len(body)
        if self.routed.pending:
            self.routed.body.append(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.routed.pending:
            self.routed.pending = False
            self.phase = IDLE
            self._start_direct()
            return
        if self.body_remaining != 0 and self.parser.should_upgrade():
            if self.body_remaining is None:  # chunked: not worth a parser of our own
                self._refuse(
                    400,
                    "Connection: Upgrade with a chunked body is not supported; send the "
                    "request without Upgrade, or with Content-Length",
                    "bad_request",
                )
                return
            self.upgrade_body = True  # httptools stops at the head: _upgrade_body reads on
            return
        super().on_message_complete()
        if self.phase == BODY:
            self.phase = IDLE

    def on_response_complete(self) -> None:
        self.transport.flush()
        super().on_response_complete()

    # --- the direct route (eikit.server.direct_route) ------------------------------

    def _start_direct(self) -> None:
        assert self.direct is not None
        routed = self.routed
        chunks = routed.body
        body = chunks[0] if len(chunks) == 1 else protocol.Pieces(chunks)
        routed.body = []
        routed.busy = True
        task = self.loop.create_task(self.direct.handler(self.headers, body, self._answer))
        routed.task = task
        task.add_done_callback(self._direct_done)
        self.tasks.add(task)  # uvicorn's graceful shutdown waits for it, as for its own

    def _answer(
        self,
        status: int,
        content_type: bytes,
        body: bytes,
        extra: List[Tuple[bytes, bytes]],
        request_id: bytes,
    ) -> None:
        """Write a direct request's answer, head and body in one write."""
        routed = self.routed
        if not routed.busy:
            return
        real = self.real
        if real is not None and not real.is_closing():
            try:
                head = direct_route.head(
                    status,
                    content_type,
                    len(body),
                    request_id,
                    extra,
                    self.server_state,
                    routed.close,
                )
            except ValueError as exc:
                log.error("answer not sent: %s", exc)
                body = error_body("internal error", "internal_error")
                head = direct_route.head(
                    500,
                    b"application/json",
                    len(body),
                    request_id,
                    [],
                    self.server_state,
                    routed.close,
                )
            if len(body) > BODY_COPY_LIMIT:
                real.writelines((head, body))
            else:
                real.write(head + body)
        routed.busy = False
        routed.task = None
        if routed.close:
            self.close_after_response()
            return
        self.on_response_complete()  # uvicorn's: resume reading, keep-alive timer, counts
        if routed.deferred and self.phase < LINGER:
            data = b"".join(routed.deferred)
            routed.deferred.clear()
            routed.deferred_bytes = 0
            self.data_received(data)

    def _direct_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if self.routed.task is task:  # it ended without answering: a bug, never silence
            if not task.cancelled() and task.exception() is not None:
                log.error("direct route failed", exc_info=task.exception())
            self.routed.close = True
            self._answer(
                500,
                b"application/json",
                error_body("internal error", "internal_error"),
                [],
                ids.new(),
            )

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: a direct request in flight (or still arriving) is
        answered, then the connection closes."""
        if self.routed.busy or self.routed.pending:
            self.routed.close = True
        else:
            super().shutdown()

    def send_400_response(self, msg: str) -> None:
        """The parser refused the request: answer in JSON rather than uvicorn's text."""
        self._refuse(400, "invalid HTTP request", "bad_request")

    # --- closing -------------------------------------------------------------

    def close_after_response(self) -> None:
        """uvicorn closes after a response (``Connection: close``, a 413): if the request body
        is still arriving, let it drain so the response is read before the socket closes."""
        real = self.real
        if real is None:
            return
        if self.phase == BODY and not real.is_closing():
            self._linger()
        else:
            self.phase = max(self.phase, LINGER)
            real.close()

    def _linger(self) -> None:
        self.phase = LINGER
        self.since = self.loop.time()
        self._unset_keepalive_if_required()
        real = self.real
        if real is None or real.is_closing():
            return
        self.transport.flush()
        if not real.can_write_eof():
            real.close()
            return
        real.write_eof()  # after what is buffered: the answer goes out, then FIN
        self.flow.resume_reading()

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answer ``status`` and close, if the answer can be the next one the client reads;
        otherwise just close."""
        real = self.real
        if real is None or real.is_closing() or self.phase >= LINGER:
            return
        request_id = ids.new()
        token = logs.request_id.set(request_id.decode("latin-1"))
        try:
            self.watchdog.warn(
                self.loop.time(), code, "%d to %s: %s", status, self._peer(), message
            )
        finally:
            logs.request_id.reset(token)
        cycle = self.cycle
        routed = self.routed
        if routed.pending:
            # A direct request still arriving: nothing answered it yet (the previous
            # request was answered before it could go direct).
            routed.pending = False
            routed.body = []
            answer = True
        elif self.phase == HEAD:
            # This request has no cycle yet; the previous one may still be answering.
            answer = cycle is None or cycle.response_complete
        else:
            # Only while its app waits for the body; not queued behind a pipelined request.
            answer = cycle is not None and not cycle.response_started and not self.pipeline
            if answer:
                cycle.disconnected = True  # the app's receive() now says http.disconnect
                cycle.message_event.set()
            elif cycle is not None and cycle.response_complete and not self.pipeline:
                self._linger()  # answered already; drain and close
                return
        if answer:
            real.write(response(status, message, code, request_id))
            self._linger()
        else:
            self.phase = LINGER
            real.close()

    def _peer(self) -> str:
        return "%s:%d" % self.client if self.client else "a client"

    # --- deadlines (checked by the server's Watchdog) --------------------------

    def check(self, now: float) -> None:
        if self.routed.busy:
            return  # a direct request runs: the pool's timeout applies, not the client's
        phase = self.phase
        waited = now - self.since
        limits = self.limits
        if phase == IDLE:
            # Between requests uvicorn's keep-alive timer applies. A connection that never
            # sent a byte is idle too, and closed after the same time, without an answer:
            # nothing was asked.
            if self.cycle is None and waited > limits.keep_alive_timeout:
                self.abort()
        elif phase in (HEAD, BODY):
            if self.flow.read_paused:
                self.since = now  # the server, not the client, stopped reading
            elif phase == HEAD and waited > limits.header_timeout:
                message = "request head not received within EIKIT_HEADER_TIMEOUT=%gs"
                self._refuse(408, message % limits.header_timeout, "request_timeout")
            elif phase == BODY and waited > limits.body_timeout:
                message = "request body not received within EIKIT_BODY_TIMEOUT=%gs"
                self._refuse(408, message % limits.body_timeout, "request_timeout")
        elif phase == LINGER and waited > LINGER_SECONDS:
            self.abort()

    def abort(self) -> None:
        """Close now (what is buffered is still sent)."""
        self.phase = max(self.phase, LINGER)
        if self.real is not None:
            self.real.close()


def protocol_class(
    limits: Limits, direct: Optional[direct_route.Route] = None
) -> Type[LimitedProtocol]:
    """A protocol class for one server (uvicorn ``Config(http=...)``); ``direct``: the route
    it answers without the ASGI cycle, if any."""
    check_uvicorn()
    attributes = {"limits": limits, "watchdog": Watchdog(limits), "direct": direct}
    return type("LimitedProtocol", (LimitedProtocol,), attributes)
