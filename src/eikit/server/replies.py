"""What every route writes: the ASGI types, an answer, an error as the client sees it.

Below both eikit.server.app and eikit.server.model_routes, which answer through it.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, List, MutableMapping, Optional, Tuple

from eikit import logs
from eikit.errors import (
    EikitError,
    InternalError,
    PayloadTooLarge,
    code_of,
    error_body,
    status_of,
)
from eikit.server import ids

# The app's logger: these lines were the app's before they moved here, and users filter on it.
log = logging.getLogger("eikit.server.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = b"application/json"


async def reply(
    send: Send,
    request_id: bytes,
    status: int,
    body: bytes = b"",
    content_type: bytes = JSON_TYPE,
    extra: Optional[List[Tuple[bytes, bytes]]] = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", b"%d" % len(body)),
        (ids.HEADER, request_id),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


CLOSE = [(b"connection", b"close")]


def header_text(value: bytes) -> str:
    """A header as text: UTF-8 as SageMaker sends names, else latin-1 (HTTP's own)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def error_answer(exc: BaseException) -> Tuple[int, bytes, Optional[List[Tuple[bytes, bytes]]]]:
    """Status, JSON body and extra headers that tell the client about ``exc``."""
    message = exc.message if isinstance(exc, EikitError) else "internal error"
    # A refused body is not read: close rather than read it all to reach the next request.
    extra = CLOSE if isinstance(exc, PayloadTooLarge) else None
    status = status_of(exc)
    if 400 <= status < 500:
        logs.rejected(log, status, exc)
    return status, error_body(message, code_of(exc)), extra


async def reply_error(send: Send, request_id: bytes, exc: BaseException) -> None:
    status, body, extra = error_answer(exc)
    await reply(send, request_id, status, body, extra=extra)


def client_error(exc: BaseException) -> BaseException:
    """What a route tells the client about ``exc``: eikit's errors as they are, a bug as
    a logged 500."""
    if isinstance(exc, EikitError):
        return exc
    log.error("internal error", exc_info=exc)
    return InternalError("internal error")
