"""``POST /invocations`` without the ASGI cycle: the hot route, answered by the protocol.

uvicorn gives every request an ASGI scope, a request-response cycle with its event, a
``receive`` and two ``send`` calls that check each header: on a tiny model that was a third
of the frontend's CPU per request. When a read holds one whole invocation (the common
case; ``LimitedProtocol._one_request`` decides) the protocol hands the headers and body to
the app's ``direct`` handler in a task of its own, and writes the answer itself, head and
body in one write. Everything else (other routes, a chunked or partial body, pipelined requests, a
``Connection`` header other than ``keep-alive`` or ``close``, Expect, Upgrade, a body over
the payload limit, multi-model endpoints, the access log) takes the ASGI path as before;
both answer alike.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, NamedTuple, Optional, Tuple

from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE

from eikit.server import ids

REQUEST_LINE = b"POST /invocations HTTP/1.1\r\n"

Handler = Callable[..., Awaitable[None]]  # (headers, body, answer) -> None


class Route(NamedTuple):
    handler: Handler
    max_body: int  # larger bodies take the ASGI path, which refuses them (413)


class Exchange:
    """A connection's direct request: reading it, running, and what came in meanwhile."""

    __slots__ = ("pending", "busy", "close", "body", "deferred", "deferred_bytes", "task")

    def __init__(self) -> None:
        self.pending = False  # the request being parsed takes the direct route
        self.busy = False  # one was handed to the app and is not answered yet
        self.close = False  # close the connection once it is answered (shutdown)
        self.body: List[bytes] = []
        self.deferred: List[bytes] = []  # reads that arrived while busy, parsed after
        self.deferred_bytes = 0
        self.task: Optional[asyncio.Task[None]] = None  # the running one, until answered


def closes(head: bytes) -> Optional[bool]:
    """Whether a request (its head, lower-cased) asks to close the connection after the
    answer: False with no ``Connection`` header or ``keep-alive``, True with ``close``;
    None (not for the direct route) with anything else or more than one."""
    at = head.find(b"\r\nconnection:")
    if at == -1:
        return False
    start = at + 13
    stop = head.find(b"\r\n", start)
    if head.find(b"\r\nconnection:", stop) != -1:
        return None
    tokens = {token.strip() for token in head[start:stop].split(b",")}
    if tokens == {b"keep-alive"}:
        return False
    if tokens == {b"close"}:
        return True
    return None


def closes_headers(headers: List[Tuple[bytes, bytes]]) -> Optional[bool]:
    """``closes`` for parsed headers (lower-case names)."""
    found = [value for name, value in headers if name == b"connection"]
    if not found:
        return False
    if len(found) > 1:
        return None
    tokens = {token.strip().lower() for token in found[0].split(b",")}
    if tokens == {b"keep-alive"}:
        return False
    if tokens == {b"close"}:
        return True
    return None


def head(
    status: int,
    content_type: bytes,
    length: int,
    request_id: bytes,
    extra: List[Tuple[bytes, bytes]],
    server_state: Any,
    close: bool = False,
) -> bytes:
    """The response head uvicorn would write for the same answer (the app's headers:
    Content-Type, Content-Length, X-Request-Id, then the script's), checked as uvicorn
    checks them: a bad Content-Type is a ValueError; a bad header from the script is left
    out rather than sent broken."""
    if HEADER_VALUE_RE.search(content_type):
        raise ValueError("invalid Content-Type %r" % content_type)
    parts = [
        STATUS_LINE[status],
        b"content-type: %s\r\ncontent-length: %d\r\n%s: %s\r\n"
        % (content_type, length, ids.HEADER, request_id),
    ]
    for name, value in list(server_state.default_headers) + extra:
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            continue
        parts.append(b"%s: %s\r\n" % (name.lower(), value))
    parts.append(b"connection: close\r\n\r\n" if close else b"\r\n")
    return b"".join(parts)
