"""Fuzz the HTTP surface of one real server: bodies, heads, and what clients do with sockets.

One ``serve`` process (module-scoped; small limits and timeouts) takes every case of every
test, over raw loopback sockets, so that what is checked is the bytes the server writes:

- bodies: random and mutated JSON / JSON lines / CSV / NPY / NPZ bodies, with random (also
  garbage or missing) Content-Type and Accept, framed by Content-Length or chunked: every
  answer is a well-formed response with status 200, 400, 406, 413 or 415, and every error
  is ``application/json`` with string ``error`` and ``code``; valid rows get the right rows;
- heads: random header names and values (tokens, odd bytes, values longer than the limit,
  hundreds of headers, duplicate Content-Length, bad Transfer-Encoding, obs-fold, odd
  methods and targets): the server answers with a well-formed status line, never 5xx, or
  closes, within a deadline; a head of at most EIKIT_MAX_HEADER_BYTES is served and one
  byte more is a 431, however the head is split into writes;
- connections: random sequences of pipelined, partial, stalled, half-closed, reset and
  ``Connection: close`` requests and ``Expect: 100-continue`` on a few sockets at once:
  every complete request gets exactly its answer, in order, and afterwards a fresh
  connection still gets ``/ping`` 200 and a correct invocation.

After each test the server process is alive, serves, holds as many descriptors as it did
after starting (open connections are polled until they close), and its log holds no
traceback. No assertion is on a duration: every wait is bounded by a generous deadline.

Each defect the fuzz found has its own test with the minimised case (a 3-D prediction
asked for as CSV, a client closing behind a pipelined request, the head limit of a
pipelined request, an ignored Upgrade's body).

Deterministic (derandomized, no example database): the same cases in every CI run.
``EIKIT_FUZZ_SCALE=10`` runs ten times as many locally.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import struct
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eikit.local import ServerProcess
from tests.fuzzing import SCALE, fuzz
from tests.integration.conftest import expected, served

DEADLINE = 30.0  # generous: the slowest thing the server does here is the 5 s keep-alive
HEAD_LIMIT = 8192
PAYLOAD_LIMIT = 64 * 1024
HEADER_TIMEOUT = 2.0
KEEP_ALIVE = 5.0
ENV = {
    "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    "EIKIT_WORKER_THREADS": "1",
    "EIKIT_HEADER_TIMEOUT": "%g" % HEADER_TIMEOUT,
    "EIKIT_BODY_TIMEOUT": "%g" % HEADER_TIMEOUT,
    "EIKIT_KEEP_ALIVE_TIMEOUT": "%g" % KEEP_ALIVE,
    "EIKIT_MAX_HEADER_BYTES": str(HEAD_LIMIT),
    "SAGEMAKER_MAX_PAYLOAD_IN_MB": "%g" % (PAYLOAD_LIMIT / 1024 / 1024),  # 0.0625
    "EIKIT_MAX_DECOMPRESSED_MB": "0.25",
}
ROWS = [[1.0, 2.0, 3.0, 4.0]]
ROWS_BODY = json.dumps({"inputs": ROWS}).encode()
FD_SLACK = 4  # descriptors the frontend may hold beyond its count after start-up

CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


# --- the server -----------------------------------------------------------------


class Server:
    def __init__(self, process: ServerProcess, log_path: Path) -> None:
        self.process = process
        self.port = process.port
        self.pid = process.process.pid  # type: ignore[union-attr]
        self.log_path = log_path
        self.fds = 0  # descriptors after start-up
        self.seen: Dict[str, Counter] = {}  # per test, what came back
        self.closed: List[bytes] = []  # heads closed without an answer

    def saw(self, test: str, what: Any) -> None:
        self.seen.setdefault(test, Counter())[what] += 1

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fd_count(self) -> int:
        return len(os.listdir("/proc/%d/fd" % self.pid))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with served(tmp_path_factory.mktemp("http-fuzz"), ENV) as (process, log_path):
        endpoint = Server(process, log_path)
        healthy(endpoint)
        endpoint.fds = settled_fds(endpoint)
        yield endpoint


def settled_fds(server: Server) -> int:
    """The frontend's descriptor count once the connections of start-up have closed."""
    deadline = time.monotonic() + DEADLINE
    low = server.fd_count()
    seen = 0
    while seen < 10 and time.monotonic() < deadline:  # until 10 readings in a row are no lower
        time.sleep(0.1)
        now = server.fd_count()
        seen = seen + 1 if now >= low else 0
        low = min(low, now)
    return low


def unexpected_tracebacks(log: str) -> List[str]:
    """Every traceback in ``log``, each with the lines of its record."""
    found = []
    for part in log.split("Traceback (most recent call last):")[1:]:
        block = []
        for line in part.splitlines()[1:]:
            if re.match(r"\d{4}-\d\d-\d\d ", line):  # the next log record
                break
            block.append(line)
        lines = [line.strip() for line in block if line.strip()]
        while lines and lines[-1] in CHAINED:
            lines.pop()
        if lines:
            found.append("Traceback (most recent call last):\n" + "\n".join(block))
    return found


def all_tracebacks(log: str) -> List[str]:
    """Every traceback in ``log``, as raw text."""
    return log.split("Traceback (most recent call last):")[1:]


def settle(server: Server) -> None:
    """After a test: alive, serving, descriptors back to where they were, no traceback."""
    assert server.process.process.poll() is None, "server died:\n" + server.log()[-5000:]
    healthy(server)
    deadline = time.monotonic() + DEADLINE
    while server.fd_count() > server.fds + FD_SLACK:
        if time.monotonic() > deadline:
            fds = sorted(
                os.readlink("/proc/%d/fd/%s" % (server.pid, fd))
                for fd in os.listdir("/proc/%d/fd" % server.pid)
            )
            raise AssertionError(
                "frontend holds %d descriptors, %d after start-up: %s" % (len(fds), server.fds, fds)
            )
        time.sleep(0.1)
    tracebacks = unexpected_tracebacks(server.log())
    assert not tracebacks, "server logged %d traceback(s); first:\n%s" % (
        len(tracebacks),
        tracebacks[0],
    )


# --- raw HTTP -------------------------------------------------------------------

STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) ([\x20-\x7e]*)")
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Response:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.interim = 0  # 100 Continue answers before this one

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"

    def __repr__(self) -> str:
        return "Response(%d, %r, %r)" % (self.status, self.headers, self.body[:300])


def parse_head(head: bytes) -> Tuple[int, Dict[str, str]]:
    """Status and headers of a response head; fails on anything malformed."""
    lines = head.split(b"\r\n")
    found = STATUS_LINE.fullmatch(lines[0])
    assert found, "malformed status line %r" % lines[0]
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon and TOKEN.fullmatch(name), "malformed header line %r" % line
        key = name.decode().lower()
        assert key not in headers, "header %s twice in %r" % (key, head)
        headers[key] = value.strip().decode("latin-1")
    return int(found.group(1)), headers


class Conn:
    """A client socket that reads whole responses, however the bytes arrive."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.used = time.monotonic()

    def send(self, data: bytes) -> bool:
        """False if the server had closed (the bytes may be lost: that is allowed)."""
        self.used = time.monotonic()
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _more(self, deadline: float) -> bool:
        if self.eof:
            return False
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError(
                "server neither answered nor closed within %gs; got %r" % (DEADLINE, self.buf[:300])
            ) from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def response(self, head_request: bool = False) -> Optional[Response]:
        """The next final response (1xx skipped), or None if the server closed before
        sending a byte of one. A response cut short or malformed fails."""
        deadline = time.monotonic() + DEADLINE
        interim = 0
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._more(deadline):
                    assert not self.buf, "closed in a response head: %r" % self.buf[:300]
                    return None
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            status, headers = parse_head(head)
            if status < 200:
                assert status == 100 and not headers, "unexpected interim %r" % head
                self.buf = rest
                interim += 1
                continue
            if status in (204, 304):
                length = 0
            else:
                assert re.fullmatch(r"[0-9]+", headers.get("content-length", "")), head
                length = int(headers["content-length"])
            if head_request and length:
                # No body after a HEAD answer, unless the server could not tell the request
                # was a HEAD (it did not parse): then the body is sent, and the server closes.
                start = len(head) + 4
                if status < 400 or headers.get("connection") != "close":
                    length = 0
                else:
                    while self._more(deadline):
                        pass
                    assert len(self.buf) - start in (0, length), self.buf[:500]
                    length = len(self.buf) - start
            while len(self.buf) - len(head) - 4 < length:
                assert self._more(deadline), "closed in a response body: %r" % self.buf[:300]
            start = len(head) + 4
            answer = Response(status, headers, self.buf[start : start + length])
            answer.interim = interim
            self.buf = self.buf[start + length :]
            self.used = time.monotonic()
            return answer

    def responses_to_end(self) -> List[Response]:
        """Every response until the server closes."""
        answers = []
        while True:
            answer = self.response()
            if answer is None:
                return answers
            answers.append(answer)

    def close(self, reset: bool = False) -> None:
        if reset:  # RST instead of FIN
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def check_error(answer: Response) -> Dict[str, Any]:
    """An error answer: JSON with string ``error`` and ``code``."""
    assert answer.headers.get("content-type") == "application/json", answer
    body = answer.json()
    assert isinstance(body, dict), answer
    assert isinstance(body.get("error"), str) and body["error"], answer
    assert isinstance(body.get("code"), str) and body["code"], answer
    return body


def invocation(body: bytes, content_type: Optional[bytes] = b"application/json") -> bytes:
    head = b"POST /invocations HTTP/1.1\r\nHost: fuzz\r\n"
    if content_type is not None:
        head += b"Content-Type: " + content_type + b"\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def healthy(server: Server) -> None:
    """A fresh connection gets /ping 200 and an invocation answered right."""
    conn = Conn(server.port)
    try:
        conn.send(b"GET /ping HTTP/1.1\r\nHost: fuzz\r\n\r\n")
        ping = conn.response()
        assert ping is not None and ping.status == 200, (ping, server.log()[-3000:])
        conn.send(invocation(ROWS_BODY))
        answer = conn.response()
        assert answer is not None and answer.status == 200, (answer, server.log()[-3000:])
        assert answer.json() == expected(ROWS)
    finally:
        conn.close()


# --- 1. bodies ------------------------------------------------------------------

SUPPORTED = [
    b"application/json",
    b"application/jsonlines",
    b"text/csv",
    b"application/x-npy",
    b"application/x-npz",
    b"application/octet-stream",
]
TYPE_VARIANTS = SUPPORTED + [
    b"application/json; charset=utf-8",
    b"Application/JSON",
    b"text/json",
    b"application/x-jsonlines",
    b"application/jsonl",
    b"TEXT/CSV; header=present",
    b"application/npy",
    b"application/x-numpy",
    b"application/npz",
    b"image/png",
    b"multipart/form-data; boundary=x",
    b"text/plain",
    b"*/*",
    b";",
    b"application/json;;;q=0",
]
VISIBLE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60
).map(lambda text: text.encode())
CONTENT_TYPES = st.one_of(st.sampled_from(TYPE_VARIANTS), VISIBLE, st.just(b""))
ACCEPT_ITEMS = st.sampled_from(
    SUPPORTED
    + [
        b"*/*",
        b"text/*",
        b"application/*",
        b"image/png",
        b"text/html",
        b"",
        b"application/json;q=0",
    ]
    + [b"text/csv;q=0.5", b"application/x-npy;q=abc", b"application/json;q=0.9;x=y", b"*"]
)
ACCEPTS = st.one_of(
    st.none(),
    st.sampled_from(SUPPORTED),
    ACCEPT_ITEMS,
    st.lists(ACCEPT_ITEMS, min_size=2, max_size=4).map(b", ".join),
    VISIBLE,
)

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 1e308, 1e-320]),
)
JSON_VALUES = st.recursive(
    st.one_of(NUMBERS, st.booleans(), st.none(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=30,
)
ROW_LISTS = st.integers(1, 4).flatmap(
    lambda width: st.lists(
        st.lists(st.floats(-1e6, 1e6, width=32), min_size=width, max_size=width),
        min_size=1,
        max_size=6,
    )
)
DTYPES = st.sampled_from(["<f4", ">f4", "<f8", "<f2", "|i1", "<i8", "|u1", "|b1", "<c8", "<U2"])
ARRAYS = st.builds(
    lambda dtype, shape, fill: np.full(shape, fill).astype(dtype),
    DTYPES,
    st.lists(st.integers(0, 5), max_size=4).map(tuple),
    st.integers(0, 9),
)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def csv_of(rows: List[List[Any]], separator: str, ending: str) -> bytes:
    return "".join(separator.join(map(str, row)) + ending for row in rows).encode()


def npy_of(array: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def npz_of(arrays: List[Any], compressed: bool) -> bytes:
    out = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(out, *arrays)
    return out.getvalue()


def lying_npy(shape: Tuple[int, ...], data: bytes) -> bytes:
    """An NPY whose header declares ``shape`` whatever follows it."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (shape,)
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def lying_npz(size: int) -> bytes:
    """An NPZ whose one member says it inflates to ``size`` bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("x.npy", npy_of(np.zeros(4, "<f4")))
    data = bytearray(out.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        data[at + offset : at + offset + 4] = struct.pack("<I", size)
    return bytes(data)


# (body, its own content type or None, the exact answer for valid rows or None)
VALID_ROWS = st.one_of(
    ROW_LISTS.map(lambda rows: ("json", rows)),
    ROW_LISTS.map(lambda rows: ("inputs", rows)),
    ROW_LISTS.map(lambda rows: ("jsonlines", rows)),
    ROW_LISTS.map(lambda rows: ("csv", rows)),
    ROW_LISTS.map(lambda rows: ("npy", rows)),
)


def valid_body(kind_rows: Tuple[str, List[List[float]]]) -> Tuple[bytes, bytes, Any]:
    kind, rows = kind_rows
    rows = [[float(np.float32(v)) for v in row] for row in rows]
    answer = expected(rows) if len(rows[0]) == 4 else None
    if kind == "json":
        return dumps(rows), b"application/json", answer
    if kind == "inputs":
        return dumps({"inputs": rows}), b"application/json", answer
    if kind == "jsonlines":
        return b"".join(dumps(row) + b"\n" for row in rows), b"application/jsonlines", answer
    if kind == "csv":
        return csv_of(rows, ",", "\r\n"), b"text/csv", answer
    return npy_of(np.asarray(rows, dtype="<f4")), b"application/x-npy", answer


def nd_body(shape: List[int], content_type: bytes) -> Tuple[bytes, bytes]:
    array = np.arange(np.prod(shape + [4]), dtype="<f4").reshape(shape + [4])
    if content_type == b"application/json":
        return dumps(array.tolist()), content_type
    return npy_of(array), content_type


BODIES = st.one_of(
    VALID_ROWS.map(lambda rows: valid_body(rows)[:2]),
    VALID_ROWS.map(lambda rows: valid_body((rows[0], [row[:1] * 4 for row in rows[1]]))[:2]),
    st.tuples(  # arrays of any rank with 4 features: the model takes them
        st.lists(st.integers(1, 3), max_size=3),
        st.sampled_from([b"application/json", b"application/x-npy"]),
    ).map(lambda args: nd_body(*args)),
    st.binary(max_size=4096).map(lambda body: (body, None)),
    JSON_VALUES.map(lambda value: (dumps(value), b"application/json")),
    st.lists(JSON_VALUES, max_size=6).map(
        lambda rows: (b"".join(dumps(row) + b"\n" for row in rows), b"application/jsonlines")
    ),
    st.tuples(
        st.lists(st.lists(st.one_of(NUMBERS, st.text(max_size=5)), max_size=5), max_size=6),
        st.sampled_from([",", ";", ", ", "\t"]),
        st.sampled_from(["\n", "\r\n", "\r", ""]),
    ).map(lambda args: (csv_of(*args), b"text/csv")),
    ARRAYS.map(lambda array: (npy_of(array), b"application/x-npy")),
    st.tuples(st.lists(ARRAYS, min_size=1, max_size=3), st.booleans()).map(
        lambda args: (npz_of(*args), b"application/x-npz")
    ),
    st.tuples(st.lists(st.integers(0, 2**40), max_size=4).map(tuple), st.binary(max_size=64)).map(
        lambda args: (lying_npy(*args), b"application/x-npy")
    ),
    st.integers(0, 2**32 - 1).map(lambda size: (lying_npz(size), b"application/x-npz")),
    st.integers(90, 110).map(lambda depth: (b"[" * depth + b"]" * depth, b"application/json")),
    st.integers(PAYLOAD_LIMIT // 4 - 600, PAYLOAD_LIMIT // 4 + 600).map(  # about the limit
        lambda n: (b"[" + b"1.0," * n + b"1.0]", b"application/json")
    ),
    st.integers(1, 4 * PAYLOAD_LIMIT).map(  # over the limit
        lambda n: (b"1,2,3,4\n" * ((PAYLOAD_LIMIT + n) // 8 + 1), b"text/csv")
    ),
)
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "cut", "insert", "delete"]),
        st.integers(0, 2**16),
        st.binary(min_size=1, max_size=4),
    ),
    max_size=3,
)


def mutate(body: bytes, mutations: List[Tuple[str, int, bytes]]) -> bytes:
    data = bytearray(body)
    for mode, position, value in mutations:
        at = position % (len(data) + 1)
        if mode == "flip" and data:
            data[at % len(data)] = value[0]
        elif mode == "cut":
            del data[at:]
        elif mode == "insert":
            data[at:at] = value
        elif mode == "delete":
            del data[at : at + len(value)]
    return bytes(data)


def chunked(body: bytes, sizes: List[int]) -> bytes:
    out = []
    at = 0
    for size in sizes:
        if at >= len(body):
            break
        out.append(b"%x\r\n%s\r\n" % (len(body[at : at + size]), body[at : at + size]))
        at += size
    if at < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - at, body[at:]))
    return b"".join(out) + b"0\r\n\r\n"


class BodyClient:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.conn: Optional[Conn] = None

    def exchange(self, request: bytes) -> Response:
        conn = self.conn
        if conn is not None and time.monotonic() - conn.used > KEEP_ALIVE / 2:
            conn.close()  # idle near the keep-alive timeout: the server may close it now
            conn = None
        if conn is None:
            conn = self.conn = Conn(self.server.port)
        conn.send(request)  # a 413 may come before the body is read: sending may fail
        answer = conn.response()
        assert answer is not None, "no answer to %r" % request[:300]
        if answer.closes:
            assert conn.response() is None, "an answer after connection: close"
            conn.close()
            self.conn = None
        return answer

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def request_for(
    body: bytes, content_type: Optional[bytes], accept: Optional[bytes], chunks: Any
) -> bytes:
    head = b"POST /invocations HTTP/1.1\r\nHost: fuzz\r\n"
    if content_type is not None:
        head += b"Content-Type: " + content_type + b"\r\n"
    if accept is not None:
        head += b"Accept: " + accept + b"\r\n"
    if chunks is None:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, chunks)


def check_body_answer(server: Server, answer: Response, accept: Optional[bytes]) -> None:
    server.saw("bodies", answer.status)
    assert answer.status in (200, 400, 406, 413, 415), answer
    if answer.status != 200:
        check_error(answer)
    else:
        assert answer.headers.get("content-type"), answer
        if accept is None or accept == b"*/*":
            answer.json()  # the default Accept: JSON


CHUNKS = st.one_of(st.none(), st.lists(st.integers(1, 5000), min_size=1, max_size=8))


@fuzz(600)
@given(
    case=BODIES,
    mutations=st.one_of(st.just([]), MUTATIONS),
    own_type=st.booleans(),
    content_type=st.one_of(st.none(), CONTENT_TYPES),
    accept=ACCEPTS,
    chunks=CHUNKS,
)
def random_body_case(
    server: Server, body_client: BodyClient, case, mutations, own_type, content_type, accept, chunks
) -> None:
    body, body_type = case
    body = mutate(body, mutations)
    if own_type and body_type is not None:
        content_type = body_type
    answer = body_client.exchange(request_for(body, content_type, accept, chunks))
    check_body_answer(server, answer, accept)


@fuzz(200)
@given(
    rows=VALID_ROWS,
    accept=st.sampled_from([None, b"*/*", b"application/json", b"text/html, application/*"]),
    chunks=CHUNKS,
)
def valid_rows_case(server: Server, body_client: BodyClient, rows, accept, chunks) -> None:
    body, content_type, answer_rows = valid_body(rows)
    answer = body_client.exchange(request_for(body, content_type, accept, chunks))
    if answer_rows is None:  # not 4 features: the model refuses them
        assert answer.status == 400, answer
        assert check_error(answer)["code"] == "bad_request"
        return
    assert answer.status == 200, answer
    assert answer.headers["content-type"] == "application/json"
    got = answer.json()
    assert np.allclose(np.asarray(got, dtype=np.float64), answer_rows, rtol=1e-5, atol=1e-2)


def test_random_bodies_get_a_client_answer(server: Server) -> None:
    client = BodyClient(server)
    try:
        random_body_case(server, client)
    finally:
        client.close()
    seen = server.seen["bodies"]
    print("bodies:", dict(seen))
    if SCALE >= 1:  # the fuzz reached every answer it is about
        assert {200, 400, 406, 413, 415} <= set(seen), seen
    settle(server)


def test_valid_rows_get_the_right_rows(server: Server) -> None:
    client = BodyClient(server)
    try:
        valid_rows_case(server, client)
    finally:
        client.close()
    settle(server)


def test_a_3d_prediction_asked_for_as_csv_is_a_client_error(server: Server) -> None:
    conn = Conn(server.port)
    try:
        conn.send(
            b"POST /invocations HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
            b"Accept: text/csv\r\nContent-Length: 24\r\n\r\n[[[1.0, 2.0, 3.0, 4.0]]]"
        )
        answer = conn.response()
    finally:
        conn.close()
    assert answer is not None
    assert answer.status == 406, answer  # text/csv cannot hold it: ask for JSON or NPY
    assert "3 dimensions" in check_error(answer)["error"]


def test_closing_behind_a_pipelined_request_logs_no_traceback(server: Server) -> None:
    """The minimised case: an invocation and a ping in one write, then FIN. Whether the
    server sees the FIN before the worker answers is a race, so it is tried a few times."""
    before = len(all_tracebacks(server.log()))
    for _ in range(20):
        conn = Conn(server.port)
        try:
            conn.send(invocation(ROWS_BODY) + b"GET /ping HTTP/1.1\r\nHost: fuzz\r\n\r\n")
            conn.sock.shutdown(socket.SHUT_WR)
            conn.responses_to_end()  # none, or the first ones: the server closes on the EOF
        finally:
            conn.close()
        # The worker answers in order: once this invocation is answered, so was the one
        # above, and what the frontend logged for it is in the log.
        healthy(server)
        logged = all_tracebacks(server.log())[before:]
        assert not logged, "Traceback (most recent call last):" + logged[0]


# --- 2. heads -------------------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TOKENS = st.text(alphabet=TCHARS, min_size=1, max_size=24).map(str.encode)
FIELD_TEXT = st.text(  # visible ASCII, inner spaces and tabs, obs-text
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
).map(lambda text: text.strip(" \t").encode("latin-1"))
NAMES = st.one_of(
    TOKENS,
    st.sampled_from(
        [b"Host", b"Content-Type", b"Accept", b"Connection", b"Expect", b"Upgrade", b"Te"]
        + [b"Trailer", b"Content-Encoding", b"Transfer-Encoding", b"Content-Length"]
    ),
)
ODD_NAMES = st.binary(max_size=12).map(lambda name: name.replace(b"\r", b"").replace(b"\n", b""))
ODD_VALUES = st.one_of(
    st.binary(max_size=40).map(lambda value: value.replace(b"\r\n", b"")),
    st.sampled_from([b"", b" ", b"\t", b"\x00", b"\x7f", b"a\rb", b"a\nb", b"a\x00b", b" a "]),
)
CONTENT_LENGTHS = st.sampled_from(
    [b"0", b"5", b"36", b"-1", b"+36", b"0x24", b" 36 ", b"36, 36", b"36,5", b"1e2"]
    + [b"99999999999999999999999", b"", b"abc", b"36\x00"]
)
TRANSFER_ENCODINGS = st.sampled_from(
    [b"chunked", b"CHUNKED", b"chunked, chunked", b"gzip, chunked", b"chunked, gzip", b"gzip"]
    + [b"identity", b"xchunked", b"chunked;x=1", b" chunked", b"chunked\x00", b"", b"\xffchunked"]
)
SPECIAL = st.one_of(
    st.tuples(st.just(b"Content-Length"), CONTENT_LENGTHS),
    st.tuples(st.just(b"Transfer-Encoding"), TRANSFER_ENCODINGS),
    st.tuples(
        st.sampled_from([b"Expect", b"Connection", b"Upgrade", b"Content-Type", b"Accept"]),
        st.sampled_from(
            [b"close", b"keep-alive", b"upgrade", b"Upgrade, close", b"100-continue"]
            + [b"100-Continue, x", b"websocket", b"h2c", b"application/json", b"text/csv"]
        ),
    ),
).map(lambda pair: pair[0] + b": " + pair[1])
CLEAN_LINES = st.lists(st.tuples(NAMES, FIELD_TEXT).map(b": ".join), max_size=6)
ODD_LINE = st.one_of(
    st.tuples(ODD_NAMES, FIELD_TEXT).map(b": ".join),
    st.tuples(NAMES, ODD_VALUES).map(b": ".join),
    st.tuples(NAMES, FIELD_TEXT, FIELD_TEXT).map(  # obs-fold
        lambda t: t[0] + b": " + t[1] + b"\r\n " + t[2]
    ),
    st.tuples(NAMES, FIELD_TEXT).map(b" : ".join),  # a space before the colon
    st.tuples(NAMES, FIELD_TEXT).map(b"".join),  # no colon
    st.just(b" leading-space: x"),
)
LONG_LINE = st.tuples(TOKENS, st.integers(HEAD_LIMIT // 2, 3 * HEAD_LIMIT)).map(
    lambda t: t[0] + b": " + b"v" * t[1]  # up to 3x the limit
)


def insert(lines: List[bytes], extra: List[bytes], position: int) -> List[bytes]:
    at = position % (len(lines) + 1)
    return lines[:at] + extra + lines[at:]


HEADER_LINES = st.one_of(
    CLEAN_LINES,
    st.tuples(CLEAN_LINES, st.lists(SPECIAL, min_size=1, max_size=3), st.integers(0, 9)).map(
        lambda t: insert(*t)
    ),
    st.tuples(CLEAN_LINES, st.lists(ODD_LINE, min_size=1, max_size=2), st.integers(0, 9)).map(
        lambda t: insert(*t)
    ),
    st.tuples(CLEAN_LINES, LONG_LINE.map(lambda line: [line]), st.integers(0, 9)).map(
        lambda t: insert(*t)
    ),
)
GOOD_REQUEST_LINES = st.sampled_from(
    [b"GET /ping HTTP/1.1", b"POST /invocations HTTP/1.1", b"HEAD /ping HTTP/1.1"]
    + [b"POST /invocations HTTP/1.1", b"GET /ping HTTP/1.0", b"GET /execution-parameters HTTP/1.1"]
)
ODD_REQUEST_LINES = st.one_of(
    st.sampled_from(
        [b"OPTIONS * HTTP/1.1", b"CONNECT 127.0.0.1:80 HTTP/1.1", b"GET /p%ZZing HTTP/1.1"]
        + [b"GET /\xff HTTP/1.1", b"GET http://h/ping HTTP/1.1", b"BREW /ping HTTP/1.1"]
        + [b"GET /ping HTTP/2.0", b"GET /ping", b"GET  /ping HTTP/1.1", b"get /ping HTTP/1.1"]
        + [b"GET /ping?a=%00 HTTP/1.1", b"PRI * HTTP/2.0", b"GET /%2e%2e/ping HTTP/1.1"]
    ),
    st.tuples(
        st.text(alphabet=TCHARS, min_size=1, max_size=10).map(str.encode),
        st.binary(min_size=1, max_size=30).map(
            lambda target: b"/" + target.replace(b"\r", b"").replace(b"\n", b"").replace(b" ", b"")
        ),
    ).map(lambda t: t[0] + b" " + t[1] + b" HTTP/1.1"),
)
# Most cases are about the headers: a request line the server takes, 4 times in 5.
REQUEST_LINES = st.integers(0, 4).flatmap(
    lambda pick: ODD_REQUEST_LINES if pick == 0 else GOOD_REQUEST_LINES
)


def build_head_case(
    request_line: bytes,
    lines: List[bytes],
    many: int,
    framing: str,
    position: int,
    line_end: bytes,
) -> bytes:
    headers = list(lines)
    headers += [b"X-Many-%d: %d" % (i, i) for i in range(many)]
    body = b""
    if request_line.startswith(b"POST"):
        body = ROWS_BODY
        headers.insert(0, b"Content-Type: application/json")
        if framing == "length":
            headers.append(b"Content-Length: %d" % len(body))
        elif framing == "chunked":
            headers.append(b"Transfer-Encoding: chunked")
            body = chunked(body, [7])
        elif framing == "both":
            headers.append(b"Content-Length: %d" % len(body))
            headers.append(b"Transfer-Encoding: chunked")
            body = chunked(body, [7])
        elif framing == "twice":
            headers.append(b"Content-Length: %d" % len(body))
            headers.append(b"Content-Length: %d" % len(body))
        elif framing == "twice-different":
            headers.append(b"Content-Length: %d" % len(body))
            headers.append(b"Content-Length: %d" % (len(body) - 5))
    at = position % (len(headers) + 1)
    headers.insert(at, b"Host: fuzz")
    head = request_line + line_end + b"".join(line + line_end for line in headers) + line_end
    return head + body


@fuzz(300)
@given(
    request_line=REQUEST_LINES,
    lines=HEADER_LINES,
    many=st.one_of(st.just(0), st.just(0), st.integers(0, 1000)),  # 1000 pass the limit
    framing=st.sampled_from(["length", "chunked", "both", "twice", "twice-different", "none"]),
    position=st.integers(0, 20),
    line_end=st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r"]),
    split=st.integers(0, 2**16),
)
def random_head_case(
    server: Server, request_line, lines, many, framing, position, line_end, split
) -> None:
    request = build_head_case(request_line, lines, many, framing, position, line_end)
    conn = Conn(server.port)
    try:
        at = split % (len(request) + 1)  # in two writes, cut anywhere
        if conn.send(request[:at]) and at < len(request):
            conn.send(request[at:])
        answer = conn.response(head_request=request_line.startswith(b"HEAD "))
    finally:
        conn.close()
    server.saw("heads", answer.status if answer else "closed")
    if answer is None:
        server.closed.append(request[:200])
        return  # closed without an answer: allowed
    assert answer.status < 500, (answer, request[:500])
    if answer.status >= 400:
        check_error(answer)


def padded_invocation(head_size: int) -> bytes:
    """An invocation whose head (request line to the blank line) is ``head_size`` bytes."""
    fixed = invocation(ROWS_BODY)[: -len(ROWS_BODY) - 2] + b"X-Pad: \r\n\r\n"
    head = fixed.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (head_size - len(fixed)))
    assert len(head) == head_size
    return head + ROWS_BODY


PING = b"GET /ping HTTP/1.1\r\nHost: fuzz\r\n\r\n"


@fuzz(150)
@given(
    delta=st.integers(-48, 48),
    behind=st.booleans(),
    cuts=st.lists(st.integers(0, 2 * HEAD_LIMIT), max_size=4),
)
def head_limit_case(server: Server, delta: int, behind: bool, cuts: List[int]) -> None:
    """A head of at most EIKIT_MAX_HEADER_BYTES is served, one byte more is a 431, however
    the bytes are split into writes, and whether or not a request is pipelined before it."""
    size = HEAD_LIMIT + delta
    before = PING if behind else b""
    data = before + padded_invocation(size)
    conn = Conn(server.port)
    try:
        at = 0
        for cut in sorted({cut % len(data) for cut in cuts} | {len(data)}):
            if cut > at and not conn.send(data[at:cut]):
                break
            at = cut
        answers: List[Response] = []
        while len(answers) < 1 + behind:
            answer = conn.response()
            if answer is None:
                break
            answers.append(answer)
            if answer.closes:
                assert conn.response() is None, "an answer after connection: close"
                break
    finally:
        conn.close()
    statuses = [answer.status for answer in answers]
    server.saw("head limit", (behind, size <= HEAD_LIMIT, tuple(statuses)))
    if behind and size > HEAD_LIMIT:
        # The ping's answer may still be pending when the 431 is due: then the server
        # closes without either (eikit.server.http: _refuse), else it answers both.
        assert statuses in ([], [200], [200, 431]), answers
    else:
        assert statuses == [200] * behind + [200 if size <= HEAD_LIMIT else 431], answers
    for answer in answers:
        if answer.status == 431:
            assert check_error(answer)["code"] == "headers_too_large" and answer.closes
    if size <= HEAD_LIMIT:
        assert answers[-1].json() == expected(ROWS)


def test_random_heads_are_answered_or_closed(server: Server) -> None:
    random_head_case(server)
    seen = server.seen["heads"]
    print("heads:", dict(seen), "closed without an answer:", server.closed)
    if SCALE >= 1:
        assert {200, 400, 431} <= set(seen), seen
    settle(server)


def test_the_head_limit_holds_however_the_head_arrives(server: Server) -> None:
    head_limit_case(server)
    seen = server.seen["head limit"]
    print("head limit:", dict(seen))
    if SCALE >= 1:
        assert {200, 431} <= {status for *_, got in seen for status in got}, seen
    settle(server)


def test_a_head_within_the_limit_behind_a_pipelined_request_is_served(server: Server) -> None:
    conn = Conn(server.port)
    try:
        # Two requests in one write; the second head is exactly at the limit.
        conn.send(PING + padded_invocation(HEAD_LIMIT))
        first = conn.response()
        second = conn.response()
    finally:
        conn.close()
    assert first is not None and first.status == 200, first
    assert second is not None and second.status == 200, second
    assert second.json() == expected(ROWS)


def test_a_head_over_the_limit_behind_a_pipelined_request_is_refused(server: Server) -> None:
    data = padded_invocation(HEAD_LIMIT + 1000)
    conn = Conn(server.port)
    try:
        conn.send(PING + data[:2000])  # the ping and the start of a head over the limit
        first = conn.response()  # the server has read the first write
        conn.send(data[2000:])
        second = conn.response()
    finally:
        conn.close()
    assert first is not None and first.status == 200, first
    assert second is not None and second.status == 431, second
    assert check_error(second)["code"] == "headers_too_large"


def test_an_upgrade_the_server_ignores_keeps_the_body(server: Server) -> None:
    conn = Conn(server.port)
    try:
        conn.send(  # what curl --http2 -d ... http://... sends
            b"POST /invocations HTTP/1.1\r\nHost: fuzz\r\nAccept: */*\r\n"
            b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(ROWS_BODY) + ROWS_BODY
        )
        answer = conn.response()
    finally:
        conn.close()
    assert answer is not None, "no answer"
    assert answer.status == 200, answer
    assert answer.json() == expected(ROWS)


# --- 3. connections -------------------------------------------------------------

# What each kind of request is, and the one answer it must get.
BIG = b"POST /invocations HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
KINDS = {
    "ping": (b"GET /ping HTTP/1.1\r\nHost: fuzz\r\n", b"", 200),
    "head": (b"HEAD /ping HTTP/1.1\r\nHost: fuzz\r\n", b"", 200),
    "invoke": (
        b"POST /invocations HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n" % len(ROWS_BODY),
        ROWS_BODY,
        200,
    ),
    "bad": (
        b"POST /invocations HTTP/1.1\r\nHost: fuzz\r\nContent-Type: text/csv\r\n"
        b"Content-Length: 7\r\n",
        b"1,x\n2,3",
        400,
    ),
    "missing": (b"GET /nothing-here HTTP/1.1\r\nHost: fuzz\r\n", b"", 404),
    # Refused on its Content-Length, before any body: the client sends none.
    "big": (BIG + b"Content-Length: %d\r\n" % (PAYLOAD_LIMIT + 1), b"", 413),
}


def request_bytes(kind: str, close: bool, expect: bool) -> bytes:
    head, body, _ = KINDS[kind]
    if close:
        head += b"Connection: close\r\n"
    if expect and head.startswith(b"POST"):
        head += b"Expect: 100-continue\r\n"
    return head + b"\r\n" + body


class Slot:
    """One client socket of a case, and what it has sent that is not yet answered."""

    def __init__(self) -> None:
        self.conn: Optional[Conn] = None
        self.pending = b""  # the rest of a request sent in part
        self.partial_since = 0.0
        self.waiting: List[Tuple[str, bool, bool]] = []  # (kind, closes, sent in parts)
        self.closing = False  # a request that ends the connection was sent

    def open(self, port: int) -> Conn:
        idle = self.conn is not None and not self.pending and not self.waiting
        if idle and time.monotonic() - self.conn.used > KEEP_ALIVE / 2:  # type: ignore[union-attr]
            self.drop()  # the server may close it as idle now
        if self.conn is None:
            self.conn = Conn(port)
        return self.conn

    def drop(self, reset: bool = False) -> None:
        if self.conn is not None:
            self.conn.close(reset)
        self.__init__()  # type: ignore[misc]


def read_answers(slot: Slot) -> None:
    """Exactly the answer of each request sent on ``slot``, in order."""
    conn = slot.conn
    assert conn is not None
    while slot.waiting:
        kind, closes, parted = slot.waiting.pop(0)
        answer = conn.response(head_request=kind == "head")
        assert answer is not None, "no answer to %s; still waiting: %r" % (kind, slot.waiting)
        if answer.status == 408 and parted:  # the rest came too late: allowed, and final
            check_error(answer)
            assert answer.closes
            slot.waiting = []
            closes = True
        else:
            check_answer(kind, answer)
            assert answer.closes == closes, (kind, answer)
        if closes:
            assert slot.waiting == [], "answers expected after connection: close"
            assert conn.response() is None, "an answer after connection: close"
            slot.drop()
            return


def send_requests(slot: Slot, port: int, requests: List[Tuple[str, bool, bool]]) -> None:
    """Finish the pending request, then send ``requests`` in one write and read every answer.
    Nothing is sent after a request the server closes on."""
    if slot.pending and time.monotonic() - slot.partial_since > HEADER_TIMEOUT / 2:
        return  # the server may time it out now: leave it (stall) rather than race it
    if slot.closing and not slot.pending:
        return
    conn = slot.open(port)
    data = slot.pending
    slot.pending = b""
    for kind, close, expect in [] if slot.closing else requests:
        data += request_bytes(kind, close, expect)
        closes = close or kind == "big"
        slot.waiting.append((kind, closes, False))
        if closes:
            slot.closing = True
            break
    conn.send(data)
    read_answers(slot)


def send_partial(slot: Slot, port: int, kind: str, close: bool, expect: bool, cut: int) -> None:
    if slot.pending or slot.closing:
        return
    request = request_bytes(kind, close, expect)
    at = 1 + cut % (len(request) - 1)  # at least one byte sent, at least one held back
    conn = slot.open(port)
    conn.send(request[:at])
    slot.pending = request[at:]
    slot.partial_since = time.monotonic()
    closes = close or kind == "big"
    slot.waiting.append((kind, closes, True))
    slot.closing = closes


def half_close(slot: Slot) -> None:
    """SHUT_WR: the server may answer what is complete; then it must close."""
    conn = slot.conn
    if conn is None:
        return
    with contextlib.suppress(OSError):
        conn.sock.shutdown(socket.SHUT_WR)
    for answer in conn.responses_to_end():
        assert answer.status in (200, 400, 404, 408, 413), answer
        if answer.status >= 400:
            check_error(answer)
    slot.drop()


def check_answer(kind: str, answer: Response) -> None:
    assert answer.status == KINDS[kind][2], (kind, answer)
    if answer.status == 200 and kind == "invoke":
        assert answer.json() == expected(ROWS), answer
    elif answer.status != 200:
        check_error(answer)
    if kind == "head":
        assert answer.body == b"" and answer.headers["content-length"] == "0"


def send_and_leave(slot: Slot, port: int, kinds: List[str], reset: bool) -> None:
    """Send requests and at once half-close (then the answers that come must be the first
    ones, in order, and the server must close) or reset (the server must carry on)."""
    if slot.pending or slot.closing:
        return
    conn = slot.open(port)
    conn.send(b"".join(request_bytes(kind, False, False) for kind in kinds))
    if reset:
        slot.drop(reset=True)
        return
    with contextlib.suppress(OSError):
        conn.sock.shutdown(socket.SHUT_WR)
    answers = conn.responses_to_end()
    assert len(answers) <= len(kinds), answers
    for kind, answer in zip(kinds, answers):
        check_answer(kind, answer)
    slot.drop()


class Stalled:
    """Sockets left open mid-request or idle; each must get a 408 or be closed."""

    def __init__(self) -> None:
        self.conns: List[Tuple[Conn, bool]] = []

    def add(self, slot: Slot) -> None:
        if slot.conn is not None:
            self.conns.append((slot.conn, bool(slot.pending)))
            slot.conn = None
        slot.drop()

    def check(self) -> None:
        for conn, partial in self.conns:
            answers = conn.responses_to_end()
            conn.close()
            if partial:  # a 408, or a close where the server had answered already
                assert len(answers) <= 1, answers
                for answer in answers:
                    assert answer.status == 408 and answer.closes, answer
                    check_error(answer)
            else:
                assert answers == [], answers
        self.conns = []

    def close(self) -> None:
        for conn, _ in self.conns:
            conn.close()
        self.conns = []


REQUEST_KINDS = st.sampled_from(sorted(KINDS))
SMALL_KINDS = st.sampled_from(sorted(set(KINDS) - {"big"}))
ACTIONS = st.one_of(
    st.tuples(st.just("request"), st.integers(0, 2), REQUEST_KINDS, st.booleans(), st.booleans()),
    st.tuples(
        st.just("pipeline"),
        st.integers(0, 2),
        st.lists(st.tuples(SMALL_KINDS, st.just(False), st.booleans()), min_size=1, max_size=10),
        REQUEST_KINDS,
        st.booleans(),
    ),
    st.tuples(
        st.just("partial"),
        st.integers(0, 2),
        REQUEST_KINDS,
        st.booleans(),
        st.booleans(),
        st.integers(0, 400),
    ),
    st.tuples(st.just("expect"), st.integers(0, 2), st.sampled_from(["invoke", "bad", "big"])),
    st.tuples(
        st.sampled_from(["shut_after", "reset_after"]),
        st.integers(0, 2),
        st.lists(SMALL_KINDS, min_size=1, max_size=4),
    ),
    st.tuples(st.sampled_from(["close", "reset", "half_close", "stall"]), st.integers(0, 2)),
)


def expect_continue(slot: Slot, port: int, kind: str) -> None:
    """Send the head, wait for 100 Continue (or the final answer), then the body."""
    if slot.pending or slot.closing:
        return
    conn = slot.open(port)
    request = request_bytes(kind, False, True)
    head, _, body = request.partition(b"\r\n\r\n")
    conn.send(head + b"\r\n\r\n")
    deadline = time.monotonic() + DEADLINE
    while not conn.buf.startswith(b"HTTP/1.1 1") and b"\r\n\r\n" not in conn.buf:
        assert conn._more(deadline), "closed before 100 Continue: %r" % conn.buf
    if kind == "big":  # refused on its length: no 100 Continue, a 413 that closes
        assert not conn.buf.startswith(b"HTTP/1.1 100"), conn.buf
        slot.waiting.append((kind, True, False))
    else:
        while b"\r\n\r\n" not in conn.buf:
            assert conn._more(deadline), "closed in 100 Continue: %r" % conn.buf
        assert conn.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), conn.buf
        conn.send(body)
        slot.waiting.append((kind, False, False))
    read_answers(slot)


def run_action(action: Tuple[Any, ...], slots: List[Slot], stalled: Stalled, port: int) -> None:
    name, slot = action[0], slots[action[1]]
    SEEN_ACTIONS[name] += 1
    if name == "request":
        _, _, kind, close, expect = action
        send_requests(slot, port, [(kind, close, expect)])
    elif name == "pipeline":
        _, _, first, last, close = action
        send_requests(slot, port, [*first, (last, close, False)])
    elif name == "partial":
        _, _, kind, close, expect, cut = action
        send_partial(slot, port, kind, close, expect, cut)
    elif name == "expect":
        expect_continue(slot, port, action[2])
    elif name in ("shut_after", "reset_after"):
        send_and_leave(slot, port, action[2], reset=name == "reset_after")
    elif name == "close":
        slot.drop()
    elif name == "reset":
        slot.drop(reset=True)
    elif name == "half_close":
        half_close(slot)
    elif name == "stall":
        stalled.add(slot)


SEEN_ACTIONS: Counter = Counter()


@fuzz(150)
@given(actions=st.lists(ACTIONS, min_size=1, max_size=10))
def connection_case(server: Server, stalled: Stalled, actions) -> None:
    slots = [Slot(), Slot(), Slot()]
    try:
        for action in actions:
            run_action(action, slots, stalled, server.port)
        for slot in slots:  # what is still unanswered is left to time out
            if slot.pending or (slot.waiting and slot.conn is not None):
                stalled.add(slot)
    finally:
        for slot in slots:
            slot.drop()
    healthy(server)


def test_random_connection_behaviour_leaves_the_server_serving(server: Server) -> None:
    stalled = Stalled()
    try:
        connection_case(server, stalled)
        print("actions:", dict(SEEN_ACTIONS), "left stalled:", len(stalled.conns))
        stalled.check()  # each got its 408, or was closed as idle
    finally:
        stalled.close()
    if SCALE >= 1:
        names = {"request", "pipeline", "partial", "expect", "shut_after", "reset_after"}
        assert names | {"close", "reset", "half_close", "stall"} <= set(SEEN_ACTIONS)
    settle(server)
