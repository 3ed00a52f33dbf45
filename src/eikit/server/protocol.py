"""Frames between the frontend and a worker over a socketpair.

A frame is a fixed header (type, request id, meta length, body length), a ``meta`` blob and
the raw body. The body travels as the client sent it and is decoded once, in the worker.

Requests and responses are the hot path, so their meta is plain bytes, not JSON:

- request meta:  ``request_id NUL content_type NUL accept NUL headers``
- response meta: three float64 (the seconds the worker spent decoding, predicting and
  encoding; NaN for a phase that did not run), then ``status NUL content_type NUL headers``

where ``headers`` is ``name:value`` pairs joined by newlines (HTTP forbids NUL and newlines
in header fields, and ``:`` in names). Control frames (INIT, READY, FAILED) carry JSON.

With dynamic batching the frontend sends several requests as one BATCH frame: its meta is
the (meta length, body length) of each request, its body their metas and bodies in turn.
The worker answers each with its own RESPONSE frame, in order.
"""

from __future__ import annotations

import json
import math
import socket
import struct
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

HEADER = struct.Struct("!BIII")

INIT = 1  # frontend -> worker: settings and the accelerator chain (JSON)
READY = 2  # worker -> frontend: model loaded (JSON)
FAILED = 3  # worker -> frontend: model did not load (JSON: message)
REQUEST = 4  # frontend -> worker
RESPONSE = 5  # worker -> frontend
BATCH = 6  # frontend -> worker: several requests, run together

# Bodies above this are sent with their own send call rather than copied into one buffer.
COPY_LIMIT = 64 * 1024

Frame = Tuple[int, int, bytes, bytes]


class Pieces(List[bytes]):
    """A request body in the pieces it arrived in (a large one, read by the direct route):
    written to the worker with one ``writelines``, never joined in the frontend."""

    @property
    def nbytes(self) -> int:
        return sum(len(piece) for piece in self)


Body = Union[bytes, Pieces]


def head(kind: int, request_id: int, meta: bytes, body_len: int) -> bytes:
    """Header and meta of a frame whose body (``body_len`` bytes) follows."""
    return HEADER.pack(kind, request_id, len(meta), body_len) + meta


def control(payload: Dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def join_headers(pairs: Iterable[Tuple[bytes, bytes]]) -> bytes:
    return b"\n".join([name + b":" + value for name, value in pairs])


def split_headers(blob: bytes) -> List[Tuple[bytes, bytes]]:
    if not blob:
        return []
    pairs = []
    for line in blob.split(b"\n"):
        name, _, value = line.partition(b":")
        pairs.append((name, value))
    return pairs


def request_meta(request_id: bytes, content_type: bytes, accept: bytes, headers: bytes) -> bytes:
    return b"\0".join((request_id, content_type, accept, headers))


def parse_request_meta(meta: bytes) -> Tuple[str, Optional[str], Optional[str], bytes]:
    request_id, content_type, accept, headers = meta.split(b"\0", 3)
    return (
        request_id.decode("latin-1"),
        content_type.decode("latin-1") or None,
        accept.decode("latin-1") or None,
        headers,
    )


BATCH_ITEM = struct.Struct("!II")


def batch_frame(items: List[Tuple[bytes, Body]]) -> List[bytes]:
    """A BATCH frame of (request meta, body) pairs, as pieces for one ``writelines``."""
    sizes = []
    pieces: List[bytes] = []
    total = 0
    for meta, body in items:
        length = body.nbytes if isinstance(body, Pieces) else len(body)
        sizes.append(BATCH_ITEM.pack(len(meta), length))
        pieces.append(meta)
        if isinstance(body, Pieces):
            pieces.extend(body)
        else:
            pieces.append(body)
        total += len(meta) + length
    return [head(BATCH, 0, b"".join(sizes), total), *pieces]


def parse_batch(meta: bytes, body: bytes) -> List[Tuple[bytes, bytes]]:
    """The (request meta, body) pairs of a BATCH frame."""
    items = []
    offset = 0
    for meta_len, body_len in BATCH_ITEM.iter_unpack(meta):
        body_start = offset + meta_len
        end = body_start + body_len
        items.append((body[offset:body_start], body[body_start:end]))
        offset = end
    return items


NOT_TIMED = (math.nan, math.nan, math.nan)
TIMINGS = struct.Struct("!ddd")


def response_meta(
    status: int,
    content_type: str,
    headers: Dict[str, str],
    timings: Tuple[float, float, float] = NOT_TIMED,
) -> bytes:
    blob = (
        join_headers(
            (str(k).encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()
        )
        if headers
        else b""
    )
    return TIMINGS.pack(*timings) + b"%d\0%s\0%s" % (status, content_type.encode("latin-1"), blob)


def parse_response_meta(
    meta: bytes,
) -> Tuple[int, bytes, List[Tuple[bytes, bytes]], Tuple[float, float, float]]:
    timings = TIMINGS.unpack_from(meta)
    status, content_type, headers = meta[TIMINGS.size :].split(b"\0", 2)
    return int(status), content_type, split_headers(headers), timings


def send(sock: socket.socket, kind: int, request_id: int, meta: bytes, body: bytes = b"") -> None:
    """Blocking send, for the worker side."""
    start = head(kind, request_id, meta, len(body))
    if len(body) <= COPY_LIMIT:
        sock.sendall(start + body)
    else:
        sock.sendall(start)
        sock.sendall(body)


class FrameReader:
    """Blocking reader for the worker side."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb", buffering=256 * 1024)

    def read(self) -> Optional[Frame]:
        start = self._file.read(HEADER.size)
        if len(start) < HEADER.size:
            return None  # the frontend went away
        kind, request_id, meta_len, body_len = HEADER.unpack(start)
        meta = self._file.read(meta_len) if meta_len else b""
        body = self._file.read(body_len) if body_len else b""
        if len(meta) < meta_len or len(body) < body_len:
            return None
        return kind, request_id, meta, body


class FrameBuffer:
    """Incremental parser for the frontend side (fed from ``data_received``).

    A partial frame is accumulated until its announced length has arrived, so a large body
    arriving in many chunks is copied once, not once per chunk.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._need = 0

    def feed(self, data: bytes) -> List[Frame]:
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return []
            data = bytes(self._pending)
            self._pending = bytearray()
        frames = []
        offset = 0
        size = len(data)
        while size - offset >= HEADER.size:
            kind, request_id, meta_len, body_len = HEADER.unpack_from(data, offset)
            meta_start = offset + HEADER.size
            body_start = meta_start + meta_len
            end = body_start + body_len
            if end > size:
                self._need = end - offset
                break
            frames.append((kind, request_id, data[meta_start:body_start], data[body_start:end]))
            offset = end
        else:
            self._need = HEADER.size
        if offset < size:
            self._pending = bytearray(data[offset:])
        return frames
