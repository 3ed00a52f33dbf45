"""Frames between the frontend and a worker over a socketpair.

A frame is a fixed header (type, request id, meta length, body length), a small JSON
``meta`` and the raw body. The body travels as the client sent it and is decoded once, in
the worker.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, Optional, Tuple

HEADER = struct.Struct("!BIII")

INIT = 1  # frontend -> worker: settings and the accelerator chain
READY = 2  # worker -> frontend: model loaded
FAILED = 3  # worker -> frontend: model did not load (meta: message)
REQUEST = 4  # frontend -> worker: meta [content_type, accept, headers]
RESPONSE = 5  # worker -> frontend: meta [status, content_type, headers, code]

# Bodies above this are sent with their own send call rather than copied into one buffer.
COPY_LIMIT = 64 * 1024

Frame = Tuple[int, int, Any, bytes]


def pack_head(kind: int, request_id: int, meta: Any, body_len: int) -> bytes:
    """Header and meta of a frame whose body (``body_len`` bytes) follows."""
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode()
    return HEADER.pack(kind, request_id, len(meta_bytes), body_len) + meta_bytes


def send(sock: socket.socket, kind: int, request_id: int, meta: Any, body: bytes = b"") -> None:
    """Blocking send, for the worker side."""
    head = pack_head(kind, request_id, meta, len(body))
    if len(body) <= COPY_LIMIT:
        sock.sendall(head + body)
    else:
        sock.sendall(head)
        sock.sendall(body)


class FrameReader:
    """Blocking reader for the worker side."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb", buffering=256 * 1024)

    def read(self) -> Optional[Frame]:
        head = self._file.read(HEADER.size)
        if len(head) < HEADER.size:
            return None  # the frontend went away
        kind, request_id, meta_len, body_len = HEADER.unpack(head)
        meta = json.loads(self._file.read(meta_len)) if meta_len else None
        body = self._file.read(body_len) if body_len else b""
        if len(body) < body_len:
            return None
        return kind, request_id, meta, body


class FrameBuffer:
    """Incremental parser for the frontend side (fed from ``data_received``)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            kind, request_id, meta_len, body_len = HEADER.unpack_from(self._buffer)
            end = HEADER.size + meta_len + body_len
            if len(self._buffer) < end:
                break
            meta_end = HEADER.size + meta_len
            meta = json.loads(bytes(self._buffer[HEADER.size : meta_end])) if meta_len else None
            body = bytes(self._buffer[meta_end:end])
            del self._buffer[:end]
            frames.append((kind, request_id, meta, body))
        return frames
