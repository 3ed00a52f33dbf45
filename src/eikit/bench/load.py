"""HTTP load: ``concurrency`` clients, each sending one request after another on a keep-alive
connection, for a time or until told to stop. One generator for the whole project
(``eikit bench``, ``bench/``, ``scripts/bench-compare``), with two engines that give the
same ``LoadResult``:

- ``wrk`` (https://github.com/wg/wrk), when it is on PATH: a C client that spends a tenth of
  the CPU per request a Python client does, which matters when the client and the server
  share two cores. A Lua script sets the request and prints exact counters and
  percentiles from ``done()``.
- ``python``: asyncio (uvloop when installed), requests pre-built as bytes. It also counts
  answers by status, keeps the first failure's body, and can run until a
  ``threading.Event`` is set rather than for a fixed time (what a fault-injection harness
  needs); ``on_answer`` sees every answer's status as it comes.

``engine="auto"`` takes wrk when it is installed and nothing asks for what only the Python
engine does.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

WRK_HINT = (
    "wrk (the HTTP load generator) is not on PATH. Install it (Debian/Ubuntu: apt-get install "
    "-y wrk; Fedora: dnf install wrk; macOS: brew install wrk) or use --engine python"
)
MARKER = "EIKIT_WRK_JSON "
FAILURE_BYTES = 300  # of the first failed answer's body, kept for the report


@dataclass(frozen=True)
class Request:
    """What every client sends, again and again."""

    url: str
    body: bytes = b""
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def invocation(
        cls, endpoint: str, body: bytes, content_type: str, accept: str = "application/json"
    ) -> Request:
        """``POST {endpoint}/invocations`` with the body and its types."""
        url = endpoint.rstrip("/") + "/invocations"
        return cls(url, body, "POST", {"Content-Type": content_type, "Accept": accept})

    def wire(self) -> Tuple[str, int, bool, bytes]:
        """Host, port, TLS, and the request as bytes on the wire."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL: %r" % self.url)
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        host = parts.netloc.rsplit("@", 1)[-1]
        lines = ["%s %s HTTP/1.1" % (self.method, target), "Host: %s" % host]
        names = {name.lower() for name in self.headers}
        lines += ["%s: %s" % (name, value) for name, value in self.headers.items()]
        has_body = self.body or self.method in ("POST", "PUT", "PATCH")
        if has_body and "content-length" not in names:
            lines.append("Content-Length: %d" % len(self.body))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return parts.hostname, port, tls, head + self.body


@dataclass
class LoadResult:
    """One load run. Latencies in ms, from the client, of answers received in the run."""

    engine: str
    concurrency: int
    duration_s: float
    requests: int  # answered, whatever the status
    ok: int  # answered 2xx
    rps: float  # answered per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    bytes_read: int = 0
    statuses: Dict[str, int] = field(default_factory=dict)  # python engine only
    errors: Dict[str, int] = field(default_factory=dict)  # socket errors and timeouts
    first_failure: Optional[str] = None  # python engine: status and body of the first non-2xx
    command: Optional[str] = None  # wrk's command line

    @property
    def non_2xx(self) -> int:
        return self.requests - self.ok

    @property
    def failed(self) -> int:
        """Answers that were not 2xx plus requests that got no answer."""
        return self.non_2xx + sum(self.errors.values())

    def as_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["non_2xx"] = self.non_2xx
        out["failed"] = self.failed
        return out


def percentile(ordered: List[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, nearest rank; NaN when empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def find_wrk(explicit: Optional[str] = None) -> Optional[str]:
    return shutil.which(explicit or "wrk")


def run(
    request: Request,
    concurrency: int,
    duration: Optional[float] = None,
    *,
    engine: str = "auto",
    wrk: Optional[str] = None,
    wrk_threads: int = 1,
    timeout: float = 30.0,
    stop: Optional[threading.Event] = None,
    on_answer: Optional[Callable[[int], None]] = None,
    on_lost: Optional[Callable[[str], None]] = None,
    drain: bool = False,
) -> LoadResult:
    """Load ``request`` with ``concurrency`` clients for ``duration`` seconds (or, python
    engine, until ``stop`` is set). ``timeout``: seconds one request may take before its
    connection is dropped and counted under ``errors["timeout"]``. ``on_lost`` sees the
    kind of each request that got no answer; ``drain`` waits, at the end, for the
    requests in flight to be answered or time out (counted), rather than dropping them."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if duration is None and stop is None:
        raise ValueError("give a duration or a stop event")
    needs_python = stop is not None or on_answer is not None or on_lost is not None or drain
    if engine == "auto":
        engine = "python" if needs_python or not find_wrk(wrk) else "wrk"
    if engine == "wrk":
        if needs_python:
            raise ValueError("stop, on_answer, on_lost and drain need engine='python'")
        path = find_wrk(wrk)
        if path is None:
            raise FileNotFoundError(WRK_HINT)
        assert duration is not None
        return run_wrk(path, request, concurrency, duration, wrk_threads, timeout)
    if engine == "python":
        return run_python(request, concurrency, duration, timeout, stop, on_answer, on_lost, drain)
    raise ValueError("unknown load engine %r: use auto, wrk or python" % engine)


# --- wrk ---------------------------------------------------------------------------------

_LUA = r"""-- generated by eikit.bench.load
local f = assert(io.open(%(body_path)s, "rb"))
wrk.method = %(method)s
wrk.body = f:read("*a")
f:close()
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,'
    .. '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d},'
    .. '"latency_us":{"min":%%d,"max":%%d,"mean":%%.3f,"stdev":%%.3f,'
    .. '"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


def _lua_str(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for ours


def lua_script(body_path: Path, method: str, headers: Mapping[str, str]) -> str:
    lines = "\n".join(
        "wrk.headers[%s] = %s" % (_lua_str(name), _lua_str(value))
        for name, value in headers.items()
    )
    return _LUA % {
        "body_path": _lua_str(str(body_path)),
        "method": _lua_str(method),
        "headers": lines,
        "marker": MARKER,
    }


def wrk_command(
    wrk: str,
    url: str,
    script: Path,
    concurrency: int,
    duration: float,
    threads: int = 1,
    timeout: float = 30.0,
) -> List[str]:
    threads = max(1, min(threads, concurrency))  # wrk needs connections >= threads
    return [
        wrk,
        "-t%d" % threads,
        "-c%d" % concurrency,
        "-d%ds" % max(1, round(duration)),
        "--timeout=%ds" % max(1, round(timeout)),
        "--latency",
        "-s",
        str(script),
        url,
    ]


def wrk_version(wrk: str) -> str:
    try:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (done.stdout + done.stderr).strip().splitlines()
    return first[0].split("Copyright")[0].strip() if first else "unknown"


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")


def duration_ms(text: str) -> float:
    """wrk's formatted time ('812.00us', '1.23ms', '2.00s', '1.50m') in milliseconds."""
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError("not a wrk duration: %r" % text)
    return float(found.group(1)) * _UNITS[found.group(2)]


def _result(engine: str, concurrency: int, fields: Dict[str, Any]) -> LoadResult:
    return LoadResult(engine=engine, concurrency=concurrency, **fields)


def _from_marker(line: str) -> Dict[str, Any]:
    data = json.loads(line[len(MARKER) :])
    latency = data["latency_us"]
    seconds = data["duration_us"] / 1e6
    errors = dict(data["errors"])
    status = errors.pop("status")
    return {
        "duration_s": seconds,
        "requests": data["requests"],
        "ok": data["requests"] - status,
        "rps": data["requests"] / seconds if seconds > 0 else 0.0,
        "p50_ms": latency["p50"] / 1e3,
        "p90_ms": latency["p90"] / 1e3,
        "p99_ms": latency["p99"] / 1e3,
        "p999_ms": latency["p999"] / 1e3,
        "mean_ms": latency["mean"] / 1e3,
        "max_ms": latency["max"] / 1e3,
        "bytes_read": data["bytes"],
        "errors": {kind: count for kind, count in errors.items() if count},
    }


def _from_text(out: str) -> Dict[str, Any]:
    """wrk's human report, where the Lua line is missing (an old wrk, a script error)."""
    found = re.search(r"^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", out, re.M)
    rate = re.search(r"^Requests/sec:\s*([\d.]+)", out, re.M)
    if not found or not rate:
        raise ValueError("wrk printed no summary: %s" % out.strip()[-300:])
    requests = int(found.group(1))
    fields: Dict[str, Any] = {
        "requests": requests,
        "duration_s": duration_ms(found.group(2)) / 1e3,
        "rps": float(rate.group(1)),
    }
    for q, key in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        line = re.search(r"^\s*%s%%\s+([\d.]+\w+)\s*$" % q, out, re.M)
        fields[key] = duration_ms(line.group(1)) if line else math.nan
    fields["p999_ms"] = math.nan
    stats = re.search(r"^\s*Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", out, re.M)
    fields["mean_ms"] = duration_ms(stats.group(1)) if stats else math.nan
    fields["max_ms"] = duration_ms(stats.group(3)) if stats else math.nan
    errors: Dict[str, int] = {}
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if sockets:
        for kind, count in zip(("connect", "read", "write", "timeout"), sockets.groups()):
            if int(count):
                errors[kind] = int(count)
    fields["errors"] = errors
    status = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    fields["ok"] = requests - (int(status.group(1)) if status else 0)
    return fields


def parse_wrk_output(out: str, concurrency: int = 0) -> LoadResult:
    """A wrk run's result, from the Lua line when there is one, else from the report."""
    for line in out.splitlines():
        if line.startswith(MARKER):
            return _result("wrk", concurrency, _from_marker(line))
    return _result("wrk", concurrency, _from_text(out))


def run_wrk(
    wrk: str,
    request: Request,
    concurrency: int,
    duration: float,
    threads: int = 1,
    timeout: float = 30.0,
) -> LoadResult:
    """One bounded wrk run (wrk stops itself after ``duration``; it is killed well after)."""
    with tempfile.TemporaryDirectory(prefix="eikit-wrk-") as work:
        body = Path(work) / "body"
        body.write_bytes(request.body)
        script = Path(work) / "request.lua"
        script.write_text(lua_script(body, request.method, request.headers))
        cmd = wrk_command(wrk, request.url, script, concurrency, duration, threads, timeout)
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + timeout + 60, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(
            "wrk failed (%d): %s" % (done.returncode, (done.stderr or done.stdout).strip())
        )
    result = parse_wrk_output(done.stdout, concurrency)
    result.command = " ".join(cmd[:-3] + ["-s", "request.lua", request.url])
    return result


# --- python (asyncio) ---------------------------------------------------------------------


class _Answer(Exception):
    """A malformed answer (not HTTP/1.x)."""


async def _read_answer(
    reader: asyncio.StreamReader, head_only: bool
) -> Tuple[int, bytes, int, bool]:
    """One HTTP/1.x answer: status, the body's first bytes, its size, and whether the server
    closes the connection after it."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith(b"HTTP/1.")
        or not status_line[1].isdigit()
    ):
        raise _Answer("not an HTTP/1.x answer: %r" % lines[0][:80])
    status = int(status_line[1])
    length = -1
    chunked = False
    close = status_line[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            token = value.strip().lower()
            close = token == b"close" or (close and token != b"keep-alive")
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, b"", 0, close
    if chunked:
        parts: List[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            chunk = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if chunk == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                break
            data = await reader.readexactly(chunk + 2)
            size += chunk
            if len(parts) < 1:
                parts.append(data[:FAILURE_BYTES])
        return status, b"".join(parts), size, close
    if length >= 0:
        body = await reader.readexactly(length) if length else b""
        return status, body[:FAILURE_BYTES], length, close
    body = await reader.read()  # delimited by the end of the connection
    return status, body[:FAILURE_BYTES], len(body), True


class _Tally:
    def __init__(
        self,
        on_answer: Optional[Callable[[int], None]],
        on_lost: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.latencies: List[float] = []
        self.statuses: Dict[str, int] = {}
        self.errors: Dict[str, int] = {}
        self.ok = 0
        self.bytes_read = 0
        self.first_failure: Optional[str] = None
        self.on_answer = on_answer
        self.on_lost = on_lost
        self.counting = True

    def answered(self, status: int, seconds: float, body: bytes, size: int) -> None:
        if not self.counting:
            return
        self.latencies.append(seconds)
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        self.bytes_read += size
        if 200 <= status < 300:
            self.ok += 1
        elif self.first_failure is None:
            self.first_failure = "HTTP %d: %s" % (status, body.decode("utf-8", "replace"))
        if self.on_answer is not None:
            self.on_answer(status)

    def lost(self, kind: str) -> None:
        if self.counting:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if self.on_lost is not None:
                self.on_lost(kind)


class _Client:
    """One connection, one request at a time; reconnects after an error or a close."""

    def __init__(self, host: str, port: int, tls: bool, wire: bytes, head_only: bool) -> None:
        self.host, self.port, self.wire, self.head_only = host, port, wire, head_only
        self.tls: Optional[ssl.SSLContext] = ssl.create_default_context() if tls else None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.sent_at = 0.0  # when the request in flight was sent; 0 when none is
        self.timed_out = False
        self.stopping = False  # send nothing more; end once the request in flight is done

    async def loop(self, tally: _Tally) -> None:
        reader: Optional[asyncio.StreamReader] = None
        while not self.stopping:
            self.timed_out = False
            try:
                if self.writer is None:
                    self.sent_at = time.perf_counter()
                    reader, self.writer = await asyncio.open_connection(
                        self.host, self.port, ssl=self.tls
                    )
                assert reader is not None
                self.sent_at = sent = time.perf_counter()
                self.writer.write(self.wire)
                status, body, size, close = await _read_answer(reader, self.head_only)
            except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError, _Answer) as exc:  # fmt: skip
                self.sent_at = 0.0
                tally.lost("timeout" if self.timed_out else _error_kind(exc))
                self.close()
                continue
            now = time.perf_counter()
            self.sent_at = 0.0
            tally.answered(status, now - sent, body, size)
            if close:
                self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def expire(self, now: float, timeout: float) -> None:
        """Drop the connection of a request older than ``timeout``: its read then fails."""
        if self.sent_at and now - self.sent_at > timeout and self.writer is not None:
            self.timed_out = True
            transport = self.writer.transport
            self.writer = None
            transport.abort()


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect"
    if isinstance(exc, (asyncio.IncompleteReadError, EOFError, ConnectionResetError)):
        return "read"
    if isinstance(exc, (_Answer, ValueError, asyncio.LimitOverrunError)):
        return "protocol"
    return "socket"


async def _drive(
    request: Request,
    concurrency: int,
    duration: Optional[float],
    timeout: float,
    stop: Optional[threading.Event],
    tally: _Tally,
    drain: bool = False,
) -> float:
    host, port, tls, wire = request.wire()
    head_only = request.method == "HEAD"
    clients = [_Client(host, port, tls, wire, head_only) for _ in range(concurrency)]
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(client.loop(tally)) for client in clients]
    try:
        while True:
            now = time.perf_counter()
            if duration is not None and now - started >= duration:
                break
            if stop is not None and stop.is_set():
                break
            failed = [task for task in tasks if task.done()]
            if failed:
                failed[0].result()  # a bug in a client: raise it rather than hang
            for client in clients:
                client.expire(now, timeout)
            left = 0.05 if duration is None else min(0.05, duration - (now - started))
            await asyncio.sleep(max(0.0, left))
        if drain:
            await _drained(clients, tasks, timeout)
        tally.counting = False
        return time.perf_counter() - started
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            client.close()


async def _drained(clients: List[_Client], tasks: Sequence[asyncio.Future], timeout: float) -> None:
    """Let each client finish the request it has in flight (answered, or lost to the
    timeout), sending no more."""
    for client in clients:
        client.stopping = True
    while not all(task.done() for task in tasks):
        now = time.perf_counter()
        for client in clients:
            client.expire(now, timeout)
        await asyncio.sleep(0.05)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


def run_python(
    request: Request,
    concurrency: int,
    duration: Optional[float] = None,
    timeout: float = 30.0,
    stop: Optional[threading.Event] = None,
    on_answer: Optional[Callable[[int], None]] = None,
    on_lost: Optional[Callable[[str], None]] = None,
    drain: bool = False,
) -> LoadResult:
    tally = _Tally(on_answer, on_lost)
    loop = _new_loop()
    try:
        seconds = loop.run_until_complete(
            _drive(request, concurrency, duration, timeout, stop, tally, drain)
        )
    finally:
        loop.close()
    ordered = sorted(tally.latencies)
    ms = [value * 1e3 for value in ordered]
    return LoadResult(
        engine="python",
        concurrency=concurrency,
        duration_s=seconds,
        requests=len(ms),
        ok=tally.ok,
        rps=len(ms) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        p999_ms=percentile(ms, 99.9),
        mean_ms=sum(ms) / len(ms) if ms else math.nan,
        max_ms=ms[-1] if ms else math.nan,
        bytes_read=tally.bytes_read,
        statuses=dict(sorted(tally.statuses.items())),
        errors=tally.errors,
        first_failure=tally.first_failure,
    )
