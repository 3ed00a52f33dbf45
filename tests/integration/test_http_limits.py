"""Slow, silent and hostile clients against a real server, over raw sockets.

Each limit is configured small so that a test takes seconds; each test waits on what the
server does with a generous deadline, never on a sleep, and checks the status, the JSON body
and that the server still serves afterwards.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from eikit.errors import ConfigurationError
from eikit.local import ServerProcess
from eikit.server import http as limits_module
from eikit.settings import load_settings
from tests.integration.conftest import ModelTree, served
from tests.integration.test_lifecycle import _alive, _children

DEADLINE = 60.0  # generous: what the server does takes about a second
ROWS = b'{"inputs": [[1.0, 2.0, 3.0, 4.0]]}'

SMALL = {
    "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    "EIKIT_WORKER_THREADS": "1",
    "EIKIT_HEADER_TIMEOUT": "1",
    "EIKIT_BODY_TIMEOUT": "1",
    "EIKIT_KEEP_ALIVE_TIMEOUT": "2",
    "EIKIT_MAX_HEADER_BYTES": "8192",
    "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
}


class Response:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.rest = b""

    def json(self) -> dict:
        assert self.headers.get("content-type") == "application/json", self.headers
        return json.loads(self.body)

    def __repr__(self) -> str:
        return "Response(%d, %r, %r)" % (self.status, self.headers, self.body[:200])


def read_response(
    sock: socket.socket, head_only: bool = False, timeout: float = DEADLINE
) -> Response:
    """One whole HTTP response (framed by Content-Length) from ``sock``."""
    deadline = time.monotonic() + timeout
    data = b""

    def more() -> None:
        nonlocal data
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, "connection closed after %r" % data[:300]
        data += chunk

    while b"\r\n\r\n" not in data:
        more()
    head, data = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    assert version == "HTTP/1.1", lines[0]
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = 0 if head_only else int(headers["content-length"])
    while len(data) < length:
        more()
    answer = Response(int(status), headers, data[:length])
    answer.rest = data[length:]  # what followed it: nothing, unless pipelined
    return answer


def read_to_end(sock: socket.socket, timeout: float = DEADLINE) -> bytes:
    """Everything the server sends until it closes; fails if it never does."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("server kept the connection open; got %r" % data[:300]) from None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def parse(data: bytes) -> Response:
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return Response(int(lines[0].split(" ")[1]), headers, body)


def assert_error(response: Response, status: int, code: str) -> None:
    assert response.status == status, response
    body = response.json()
    assert body["code"] == code and body["error"], body
    assert int(response.headers["content-length"]) == len(response.body)


def connect(endpoint) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", endpoint.server.port), timeout=DEADLINE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def ping_ok(endpoint) -> None:
    """A fresh connection still gets GET /ping 200 and an invocation answered."""
    with connect(endpoint) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock).status == 200
        request = (
            b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(ROWS)
        )
        sock.sendall(request + ROWS)
        answer = read_response(sock)
        assert answer.status == 200, answer
        assert json.loads(answer.body) == [[1.0, 9.5]]


def frontend_rss(pid: int) -> int:
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Iterator:
    """One server with small limits for the tests that do not count connections."""
    from tests.integration.conftest import Endpoint

    with served(tmp_path_factory.mktemp("limits"), SMALL) as (server, log_path):
        yield Endpoint(server, log_path)


# --- the head ---------------------------------------------------------------


def test_one_header_byte_at_a_time_gets_408(limited):
    with connect(limited) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        deadline = time.monotonic() + DEADLINE
        while not select.select([sock], [], [], 0.2)[0]:  # trickle until the server answers
            assert time.monotonic() < deadline, "a trickled header held the connection open"
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = parse(read_to_end(sock))
    assert_error(answer, 408, "request_timeout")
    assert "EIKIT_HEADER_TIMEOUT" in answer.json()["error"]
    ping_ok(limited)


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(limited):
    with connect(limited) as sock:
        assert read_to_end(sock) == b""
    ping_ok(limited)


def test_an_oversized_header_gets_431_before_it_is_buffered(limited):
    with connect(limited) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (1 << 20))
        answer = parse(read_to_end(sock))
    assert_error(answer, 431, "headers_too_large")
    assert "EIKIT_MAX_HEADER_BYTES=8192" in answer.json()["error"]
    ping_ok(limited)


def test_the_head_limit_counts_from_the_first_byte_and_not_the_body(limited):
    def head(size: int) -> bytes:
        start = b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
        fixed = start + b"Content-Length: %d\r\nX-Pad: \r\n\r\n" % len(ROWS)
        return fixed.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (size - len(fixed)))

    with connect(limited) as sock:  # exactly at the limit, with the body in the same write
        sock.sendall(head(8192) + ROWS)
        assert read_response(sock).status == 200
    with connect(limited) as sock:  # one byte over
        sock.sendall(head(8193) + ROWS)
        assert_error(parse(read_to_end(sock)), 431, "headers_too_large")
    with connect(limited) as sock:  # a body far larger than the head limit is not a head
        rows = json.dumps({"inputs": [[1.0, 2.0, 3.0, 4.0]] * 2000}).encode()
        assert len(rows) > 4 * 8192
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(rows) + rows
        )
        answer = read_response(sock)
        assert answer.status == 200 and len(json.loads(answer.body)) == 2000


def test_unterminated_huge_headers_do_not_grow_the_frontend(limited):
    """On main, four 64 MiB unterminated headers added about 250 MB to the frontend."""
    pid = limited.server.process.pid
    before = frontend_rss(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], frontend_rss(pid))
            time.sleep(0.01)

    def hostile() -> None:
        with connect(limited) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nX-Huge: ")
            piece = b"h" * (1 << 20)
            try:
                for _ in range(64):
                    sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server closed the connection: that is what it should do

    sampler = threading.Thread(target=sample)
    sampler.start()
    clients = [threading.Thread(target=hostile) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(DEADLINE)
    done.set()
    sampler.join()
    grown = peak[0] - before
    assert grown < 32 * 1024 * 1024, "frontend grew by %d MB" % (grown >> 20)
    ping_ok(limited)


# --- the body ---------------------------------------------------------------


def test_a_body_shorter_than_its_content_length_gets_408(limited):
    with connect(limited) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + ROWS
        )
        answer = parse(read_to_end(sock))
    assert_error(answer, 408, "request_timeout")
    assert "EIKIT_BODY_TIMEOUT" in answer.json()["error"]
    ping_ok(limited)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_413_reaches_a_client_that_sent_connection_close(limited, chunked):
    body = b"[" + b"1.0, " * (2 << 20) + b"1.0]"  # 10 MB against a 1 MB limit
    if chunked:
        framing = b"Transfer-Encoding: chunked\r\n"
        piece = 64 * 1024
        sent = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece])
            for i in range(0, len(body), piece)
        )
        sent += b"0\r\n\r\n"
    else:
        framing = b"Content-Length: %d\r\n" % len(body)
        sent = body
    with connect(limited) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
            + framing
            + b"Connection: close\r\n\r\n"
            + sent
        )  # a reset here (on main) is the bug: the server closed with the body unread
        answer = parse(read_to_end(sock))
    assert_error(answer, 413, "payload_too_large")
    assert answer.headers["connection"] == "close"
    ping_ok(limited)


# --- routes -----------------------------------------------------------------


def test_head_ping_answers_like_get_without_a_body(limited):
    with connect(limited) as sock:
        sock.sendall(b"HEAD /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        head = read_response(sock, head_only=True)
        assert head.status == 200 and head.headers["content-length"] == "0"
        # No body followed: the next answer on the same connection is framed right.
        sock.sendall(b"HEAD /execution-parameters HTTP/1.1\r\nHost: t\r\n\r\n")
        head = read_response(sock, head_only=True)
        assert head.status == 200 and int(head.headers["content-length"]) > 0
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = read_response(sock)
        assert head.rest == b"" and answer.status == 200 and answer.body == b""


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("DELETE", "/ping", "GET, HEAD"),
        ("POST", "/ping", "GET, HEAD"),
        ("GET", "/invocations", "POST"),
        ("PUT", "/execution-parameters", "GET, HEAD"),
    ],
)
def test_405_carries_allow(limited, method, path, allow):
    with connect(limited) as sock:
        sock.sendall(
            b"%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
            % (method.encode(), path.encode())
        )
        answer = read_response(sock)
    assert_error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == allow


def test_invalid_http_gets_a_json_400(limited):
    with connect(limited) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nBad Header\r\n\r\n")
        assert_error(parse(read_to_end(sock)), 400, "bad_request")
    ping_ok(limited)


# --- connections ------------------------------------------------------------


def test_connections_over_the_limit_get_503_and_the_server_serves_after(tree, start):
    endpoint = start(tree, {"EIKIT_MAX_CONNECTIONS": "4", "EIKIT_KEEP_ALIVE_TIMEOUT": "300"})
    idle = [connect(endpoint) for _ in range(4)]
    try:
        with connect(endpoint) as sock:
            answer = parse(read_to_end(sock))
        assert_error(answer, 503, "too_many_connections")
        assert "EIKIT_MAX_CONNECTIONS=4" in answer.json()["error"]
        # The idle ones were accepted: each still gets its answer.
        idle[0].sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(idle[0]).status == 200
    finally:
        idle.pop().close()
    deadline = time.monotonic() + DEADLINE
    while True:  # the closed one frees its place as soon as the server sees it closed
        with connect(endpoint) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
            if read_response(sock).status == 200:
                break
        assert time.monotonic() < deadline, endpoint.log()
    for sock in idle:
        sock.close()


class LowFileLimit(ServerProcess):
    """``serve`` started under a low open-files limit (ulimit -n)."""

    def __init__(self, base_dir: Path, env: Dict[str, str], nofile: int) -> None:
        super().__init__(base_dir, env)
        self.nofile = nofile

    def start(self, stdout=None) -> ServerProcess:
        def lower() -> None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, hard))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "eikit", "serve"],
            env=self.env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            preexec_fn=lower,
        )
        return self


def test_idle_connections_cannot_take_the_descriptors_a_respawn_needs(tmp_path):
    """On main, idle connections under a low ``ulimit -n`` took every descriptor, and a
    killed worker could not be replaced."""
    from tests.integration.conftest import Endpoint

    tree = ModelTree(tmp_path / "ml")
    env = dict(SMALL, EIKIT_KEEP_ALIVE_TIMEOUT="600", EIKIT_HEADER_TIMEOUT="600")
    server = LowFileLimit(tree.base, env, nofile=128)
    log_path = tmp_path / "server.log"
    server.start(stdout=log_path.open("wb"))
    endpoint = Endpoint(server, log_path)
    held: List[socket.socket] = []
    try:
        assert server.wait_ready(120) == 200, endpoint.log()
        assert "EIKIT_MAX_CONNECTIONS=1000 lowered to" in endpoint.log()
        for _ in range(200):  # more than the process may open
            held.append(connect(endpoint))
        workers = [pid for pid in _children(server.process.pid) if _alive(pid)]
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while "replaced and ready" not in endpoint.log():
            assert time.monotonic() < deadline, "no respawn:\n" + endpoint.log()
            time.sleep(0.05)
        # The first connections were accepted and still serve, with the new worker.
        held[0].sendall(
            b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(ROWS) + ROWS
        )
        answer = read_response(held[0])
        assert answer.status == 200, answer
        # The ones past the limit were told so, in JSON.
        refused = [sock for sock in held[-40:] if select.select([sock], [], [], 5)[0]]
        assert refused
        first = read_to_end(refused[-1])
        if first:  # past the few that linger, refused connections are closed at once
            assert_error(parse(first), 503, "too_many_connections")
        assert "Too many open files" not in endpoint.log()
    finally:
        for sock in held:
            sock.close()
        server.stop()


# --- uvicorn ----------------------------------------------------------------


def _pinned_uvicorn() -> Tuple[str, str]:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    found = re.search(r'"uvicorn>=([0-9.]+),<([0-9.]+)', text)
    assert found, "uvicorn is not pinned to a tested range in pyproject.toml"
    return found.group(1), found.group(2)


def _version(text: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def test_uvicorn_is_within_the_tested_range_and_has_what_the_limits_extend(monkeypatch):
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    low, high = _pinned_uvicorn()
    assert _version(low) <= _version(uvicorn.__version__) < _version(high), (
        "uvicorn %s is outside the range eikit.server.http was tested with (%s, <%s): "
        "run tests/integration/test_http_limits.py and test_http_fuzz.py, then widen the pin"
        % (uvicorn.__version__, low, high)
    )
    limits_module.check_uvicorn()
    monkeypatch.delattr(HttpToolsProtocol, "on_headers_complete")
    with pytest.raises(ConfigurationError, match="on_headers_complete"):
        limits_module.check_uvicorn()


def test_the_connection_limit_leaves_descriptors_for_the_workers(monkeypatch):
    settings = load_settings(workers=2)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1 << 20, 1 << 20))
    assert limits_module.connection_cap(settings) == 1000
    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 1 << 20))
    cap = limits_module.connection_cap(settings)
    assert 100 < cap <= 256 - 2 * limits_module.FD_PER_WORKER - limits_module.FD_RESERVE
