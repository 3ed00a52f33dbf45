"""Request ids: one per HTTP request, answered in ``X-Request-Id`` and shown in every log
line about the request (``request=ID``), in the frontend and in the worker.

A client (or a proxy in front of the container) may bring its own id in ``X-Request-Id`` or
``X-Amzn-RequestId``; it is kept if it is short, printable token text, so a hostile value
cannot forge log lines or grow them. Otherwise the server makes one: a random prefix per
server process and a counter, unique for the life of the server and cheaper than a UUID
on the request path.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Iterable, Tuple

HEADER = b"x-request-id"
CLIENT_HEADERS = (HEADER, b"x-amzn-requestid")
MAX_LENGTH = 128
_USABLE = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,%d}$" % MAX_LENGTH)

_prefix = os.urandom(4).hex().encode()
_counter = itertools.count(1)


def new() -> bytes:
    return b"%s-%x" % (_prefix, next(_counter))


def for_request(headers: Iterable[Tuple[bytes, bytes]]) -> bytes:
    """The client's id when it sent a usable one, else a new one."""
    for name, value in headers:
        if name in CLIENT_HEADERS and _USABLE.match(value):
            return value
    return new()
