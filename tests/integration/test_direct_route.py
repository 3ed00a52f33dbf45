"""``POST /invocations`` read in one piece is answered by the protocol, without the ASGI
cycle (eikit.server.direct_route): the same answers as the ASGI path, in order on one
connection, through slow predictions, ``Connection: close`` and shutdown."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Dict, List, Tuple

SCRIPT = """
import time, torch
def input_fn(input_data, content_type, context):
    if input_data.startswith("sleep "):
        time.sleep(float(input_data.split()[1]))
    return torch.tensor([[1.0, 2.0, 3.0, 4.0]])
def output_fn(prediction, accept, context):
    context.set_response_header(0, "X-Answer", "yes")
    context.set_response_status(201)
    return ('{"y": %s}' % prediction.tolist(), "application/x-answer")
"""

Answer = Tuple[int, Dict[str, str], bytes]


def request(body: bytes, headers: Tuple[str, ...] = ()) -> bytes:
    lines = ["POST /invocations HTTP/1.1", "Host: test", "Content-Type: application/json"]
    lines += list(headers) + ["Content-Length: %d" % len(body)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes) -> bytes:
    head = (
        "POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    return head.encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


class Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), "connection closed before an answer: %r" % self.buffer
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status < 200:  # 100 Continue: the answer follows
            return self.answer()
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            assert self._fill(), "connection closed inside a body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self) -> bool:
        return not self.buffer and not self._fill()


def connect(endpoint) -> socket.socket:
    host, port = endpoint.url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    return sock


def exchange(endpoint, raw: bytes) -> Answer:
    with connect(endpoint) as sock:
        sock.sendall(raw)
        return Reader(sock).answer()


def test_the_direct_and_asgi_paths_answer_alike(tree, start):
    tree.script(SCRIPT)
    endpoint = start(tree)
    answers: List[Answer] = [
        exchange(endpoint, request(b'"x"')),  # direct
        exchange(endpoint, request(b'"x"', ("Connection: keep-alive",))),  # direct
        exchange(endpoint, chunked(b'"x"')),  # ASGI: a chunked body
        exchange(endpoint, request(b'"x"', ("Expect: 100-continue",))),  # ASGI
    ]
    for status, headers, body in answers:
        assert status == 201
        assert body == b'{"y": [[1.0, 9.5]]}'
        assert headers["content-type"] == "application/x-answer"
        assert headers["x-answer"] == "yes"
        assert headers["content-length"] == str(len(body))
        assert headers["x-request-id"]
        del headers["x-request-id"]
    assert all(headers == answers[0][1] for _, headers, _ in answers), answers


def test_errors_are_answered_alike_on_both_paths(tree, start):
    endpoint = start(tree)  # the default hooks
    for body, kind, status in ((b"{", "application/json", 400), (b"[1]", "image/gif", 415)):
        direct = request(body).replace(b"application/json", kind.encode())
        asgi = chunked(body).replace(b"application/json", kind.encode())
        answers = [exchange(endpoint, raw) for raw in (direct, asgi)]
        for got, headers, text in answers:
            assert got == status and headers["content-type"] == "application/json", text
        assert answers[0][2] == answers[1][2]


def test_requests_sent_while_one_runs_are_answered_in_order(tree, start):
    tree.script(SCRIPT)
    endpoint = start(tree, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    with connect(endpoint) as sock:
        reader = Reader(sock)
        sock.sendall(request(b"sleep 1", ("X-Request-Id: first",)))
        time.sleep(0.3)  # the first is running when the next ones arrive
        sock.sendall(request(b'"x"', ("X-Request-Id: second",)))
        sock.sendall(request(b'"x"', ("X-Request-Id: third",)) * 2)
        ids = [reader.answer()[1]["x-request-id"] for _ in range(4)]
    assert ids == ["first", "second", "third", "third"]


def test_a_prediction_may_outlast_the_keep_alive_timeout(tree, start):
    tree.script(SCRIPT)
    endpoint = start(tree, {"EIKIT_KEEP_ALIVE_TIMEOUT": "1"})
    with connect(endpoint) as sock:
        reader = Reader(sock)
        sock.sendall(request(b"sleep 2.5"))
        assert reader.answer()[0] == 201
        sock.sendall(request(b'"x"'))  # and the connection is still there
        assert reader.answer()[0] == 201
        # idle, it is closed after the keep-alive timeout
        sock.settimeout(30)
        assert reader.closed()


def test_connection_close_is_answered_then_closed(tree, start):
    tree.script(SCRIPT)
    endpoint = start(tree)
    with connect(endpoint) as sock:
        reader = Reader(sock)
        sock.sendall(request(b'"x"', ("Connection: close",)))
        status, headers, _ = reader.answer()
        assert status == 201 and headers["connection"] == "close"
        assert reader.closed()


def test_sigterm_answers_a_running_request_then_closes_its_connection(tree, start):
    tree.script(SCRIPT)
    endpoint = start(tree)
    process = endpoint.server.process
    result: Dict[str, object] = {}
    with connect(endpoint) as sock:
        reader = Reader(sock)

        def run() -> None:
            sock.sendall(request(b"sleep 1.5"))
            result["answer"] = reader.answer()
            result["closed"] = reader.closed()

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        thread.join(60)
    status, headers, _ = result["answer"]  # type: ignore[misc]
    assert status == 201 and headers["connection"] == "close"
    assert result["closed"] is True
    assert process.wait(30) == 0


def test_a_body_in_many_reads_is_answered_and_a_request_after_it_waits(tree, start):
    endpoint = start(tree)  # the default hooks: the answer shows the body arrived whole
    rows = b"[" + b", ".join([b"[1.0, 2.0, 3.0, 4.0]"] * 20000) + b"]"  # ~420 KB
    with connect(endpoint) as sock:
        reader = Reader(sock)
        raw = request(rows, ("X-Request-Id: big",))
        for at in range(0, len(raw) - 1000, 65536):
            sock.sendall(raw[at : at + 65536])
            time.sleep(0.01)  # separate reads
        # the body's last bytes and the next request in one write
        sock.sendall(raw[at + 65536 :] + request(b"[[1, 1, 1, 1]]", ("X-Request-Id: next",)))
        status, headers, body = reader.answer()
        assert (status, headers["x-request-id"]) == (200, "big")
        assert body.count(b"9.5") == 20000
        status, headers, body = reader.answer()
        assert (status, headers["x-request-id"], body) == (200, "next", b"[[1.0,3.5]]")


def test_sigterm_while_a_body_arrives_still_answers_it(tree, start):
    endpoint = start(tree)
    process = endpoint.server.process
    rows = b"[" + b", ".join([b"[1.0, 2.0, 3.0, 4.0]"] * 20000) + b"]"
    raw = request(rows)
    with connect(endpoint) as sock:
        reader = Reader(sock)
        sock.sendall(raw[: len(raw) // 2])
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(raw[len(raw) // 2 :])
        status, headers, body = reader.answer()
        assert status == 200 and headers["connection"] == "close"
        assert body.count(b"9.5") == 20000 and reader.closed()
    assert process.wait(30) == 0
