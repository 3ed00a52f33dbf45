"""eikit.bench.load, the project's one HTTP load generator: wrk's output read exactly, and the
Python engine against a small HTTP server on loopback (statuses, failures, timeouts, a stop
event, keep-alive and reconnects). Short runs; nothing here asserts speed."""

from __future__ import annotations

import http.server
import math
import shutil
import socketserver
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from eikit.bench import load

WRK_TEXT = """\
Running 10s test @ http://127.0.0.1:8080/invocations
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.31ms  812.44us  21.07ms   91.20%
    Req/Sec     6.95k   402.11     7.60k    80.00%
  Latency Distribution
     50%    2.18ms
     75%    2.45ms
     90%  850.00us
     99%    1.20s
  69182 requests in 10.00s, 9.84MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   6917.64
Transfer/sec:      0.98MB
"""

MARKER_LINE = (
    'EIKIT_WRK_JSON {"requests":69182,"duration_us":10001000,"bytes":10318000,'
    '"errors":{"connect":0,"read":0,"write":0,"status":4,"timeout":0},'
    '"latency_us":{"min":300,"max":21070,"mean":2310.500,"stdev":812.440,'
    '"p50":2180,"p90":2900,"p99":7650,"p999":15000}}'
)


@pytest.mark.parametrize(
    "text,ms", [("812.44us", 0.81244), ("2.18ms", 2.18), ("1.20s", 1200.0), ("1.50m", 90000.0)]
)
def test_wrk_durations(text: str, ms: float) -> None:
    assert load.duration_ms(text) == pytest.approx(ms)
    with pytest.raises(ValueError):
        load.duration_ms("fast")


def test_wrk_text_report() -> None:
    r = load.parse_wrk_output(WRK_TEXT, 16)
    assert (r.engine, r.concurrency, r.requests) == ("wrk", 16, 69182)
    assert r.duration_s == pytest.approx(10.0) and r.rps == pytest.approx(6917.64)
    assert (r.p50_ms, r.p90_ms, r.p99_ms) == pytest.approx((2.18, 0.85, 1200.0))
    assert r.errors == {"read": 2, "timeout": 3} and r.non_2xx == 7 and r.failed == 12
    assert math.isnan(
        load.parse_wrk_output("  10 requests in 1.00s, 1KB read\nRequests/sec: 10\n").p99_ms
    )
    with pytest.raises(ValueError):
        load.parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_wrk_lua_line_wins_over_the_text() -> None:
    r = load.parse_wrk_output(WRK_TEXT + MARKER_LINE + "\n", 16)
    assert r.requests == 69182 and r.ok == 69178 and r.failed == 4
    assert r.rps == pytest.approx(69182 / 10.001)
    assert (r.p50_ms, r.p99_ms, r.p999_ms) == pytest.approx((2.18, 7.65, 15.0))


def test_wrk_script_and_command(tmp_path: Path) -> None:
    lua = load.lua_script(tmp_path / "b", "PUT", {"Content-Type": "application/x-npy", "X": "y"})
    assert 'io.open("%s", "rb")' % (tmp_path / "b") in lua and 'wrk.method = "PUT"' in lua
    assert 'wrk.headers["Content-Type"] = "application/x-npy"' in lua
    assert "%%" not in lua and '"requests":%d' in lua  # Lua sees single % signs
    cmd = load.wrk_command("wrk", "http://127.0.0.1:1/", tmp_path / "s.lua", 1, 10, 4)
    assert cmd[1:4] == ["-t1", "-c1", "-d10s"]  # no more threads than connections
    assert load.find_wrk("/nonexistent/wrk-for-eikit-tests") is None
    assert "apt-get install -y wrk" in load.WRK_HINT


def test_request_on_the_wire() -> None:
    request = load.Request.invocation("http://127.0.0.1:9/", b"[1]", "application/json")
    host, port, tls, wire = request.wire()
    assert (host, port, tls) == ("127.0.0.1", 9, False)
    assert wire.startswith(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    assert b"Content-Length: 3\r\n\r\n[1]" in wire and b"Accept: application/json" in wire
    with pytest.raises(ValueError):
        load.Request("ftp://x/").wire()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == 50 and load.percentile(values, 99) == 99
    assert load.percentile(values, 100) == 100 and math.isnan(load.percentile([], 50))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: List[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(body)
        if body == b"slow":
            time.sleep(1.0)
        if body == b"close":
            self.close_connection = True
        status = 500 if body == b"fail" else 200
        answer = b'{"error": "nope"}' if status == 500 else b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture
def url() -> Iterator[str]:
    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_python_engine_counts_answers_and_latencies(url: str) -> None:
    result = load.run(load.Request(url + "/x", b"hello"), 3, 0.3, engine="python")
    assert result.engine == "python" and result.concurrency == 3
    assert result.requests > 0 and result.ok == result.requests and result.failed == 0
    assert result.statuses == {"200": result.requests}
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert result.rps == pytest.approx(result.requests / result.duration_s)


def test_python_engine_keeps_the_first_failure(url: str) -> None:
    result = load.run(load.Request(url + "/x", b"fail"), 2, 0.2, engine="python")
    assert result.ok == 0 and result.non_2xx == result.requests > 0
    assert result.first_failure == 'HTTP 500: {"error": "nope"}'


def test_python_engine_reconnects_when_the_server_closes(url: str) -> None:
    result = load.run(load.Request(url + "/x", b"close"), 1, 0.3, engine="python")
    assert result.requests > 1 and result.failed == 0


def test_python_engine_times_out_a_slow_request(url: str) -> None:
    result = load.run(load.Request(url + "/x", b"slow"), 1, 1.5, engine="python", timeout=0.2)
    assert result.errors.get("timeout", 0) >= 1 and result.requests == 0


def test_python_engine_stops_on_an_event_and_reports_each_answer(url: str) -> None:
    stop = threading.Event()
    seen: List[int] = []

    def on_answer(status: int) -> None:
        seen.append(status)
        if len(seen) >= 5:
            stop.set()

    result = load.run(load.Request(url + "/x", b"hi"), 2, stop=stop, on_answer=on_answer)
    assert stop.is_set() and len(seen) >= 5 and result.requests >= 5
    with pytest.raises(ValueError):
        load.run(load.Request(url + "/x"), 1, stop=stop, engine="wrk")


def test_python_engine_counts_refused_connections() -> None:
    with Server(("127.0.0.1", 0), Handler) as server:
        port = server.server_address[1]  # closed again: nothing listens there
    result = load.run(load.Request("http://127.0.0.1:%d/" % port), 1, 0.2, engine="python")
    assert result.requests == 0 and result.errors.get("connect", 0) > 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_engine_gives_the_same_fields(url: str) -> None:
    result = load.run(load.Request(url + "/x", b"hello"), 2, 1, engine="wrk")
    assert result.engine == "wrk" and result.requests > 0 and result.failed == 0
    assert result.command and "-c2" in result.command
