"""Logging set-up for the frontend and the workers: one line per event, no noise.

Nothing a client sent is logged at INFO: a refused request is logged with its status and
code only (its message may quote a CSV cell or a header), and every record is cut at
``MAX_RECORD`` characters, so no request can make the log grow by more than that.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Optional

from eikit.errors import client_message, code_of, shorten

FORMAT = "%(asctime)s %(levelname)s %(process)d %(role)s%(request)s %(name)s: %(message)s"
MAX_RECORD = 8192  # characters of one record, traceback included
MAX_DETAIL = 300  # characters of a refused request's message, at DEBUG
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The request a log line is about: set by the frontend's request task and by the worker
# around each request, shown as ``request=ID`` after the role.
request_id: ContextVar[str] = ContextVar("eikit_request_id", default="")


def level_number(value: object) -> int:
    """A level as AWS's containers take ``SAGEMAKER_CONTAINER_LOG_LEVEL``: a number (20, 25,
    what the SageMaker SDK sets) or a name (INFO, warn; any case)."""
    text = str(value).strip()
    try:
        number = int(text)
    except ValueError:
        number = logging.getLevelName(text.upper())
        if not isinstance(number, int):
            raise ValueError(
                "unknown log level %r: use a number (10, 20, 25, ...) or one of DEBUG, INFO, "
                "WARNING, ERROR, CRITICAL" % shorten(text, 40)
            ) from None
    if number < 0:
        raise ValueError("log level %d is negative" % number)
    return number


def level_name(value: object) -> str:
    """The canonical text of a level: its name where it has one (20 -> INFO), else the number."""
    number = level_number(value)
    name = logging.getLevelName(number)
    return name if logging.getLevelName(name) == number else str(number)


def printable(text: str) -> str:
    """``text`` on one line: control characters (newlines too) escaped, so none forges a line."""
    return _CONTROL.sub(lambda match: "\\x%02x" % ord(match.group()), text)


def rejected(logger: logging.Logger, status: int, exc: BaseException) -> None:
    """Log a refused request (4xx): status and code at INFO; the message, which may quote the
    request, only when DEBUG is on, shortened to one line."""
    code = code_of(exc)
    if logger.isEnabledFor(logging.DEBUG):
        detail = printable(client_message(exc, MAX_DETAIL))
        logger.debug("request rejected (%d %s): %s", status, code, detail)
    else:
        logger.info("request rejected (%d %s)", status, code)


class _BoundedFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return shorten(super().format(record), MAX_RECORD)


class _RoleFilter(logging.Filter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        current = request_id.get()
        record.request = " request=" + current if current else ""
        return True


def configure(level: object, role: str = "frontend", stream: Optional[object] = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(_BoundedFormatter(FORMAT))
    handler.addFilter(_RoleFilter(role))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number(level))
    # uvicorn's own start-up chatter is useful once; its per-request lines are not.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
