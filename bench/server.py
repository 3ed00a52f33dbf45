"""Start an eikit server on loopback, wait for /ping, stop it with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

from eikit.ping import exited, wait_ready

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def default_serve_cmd() -> str:
    return str(Path(sys.executable).parent / "serve")


def server_env(base_dir: Path, port: int, workers: int, threads: int) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        SAGEMAKER_BASE_DIR=str(base_dir),
        SAGEMAKER_BIND_TO_PORT=str(port),
        EIKIT_HOST=HOST,
        SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
        EIKIT_WORKER_THREADS=str(threads),
    )
    return env


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def children(pid: int) -> List[int]:
    """All descendants of ``pid`` (Linux /proc), for reporting worker pids."""
    out: List[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_times(pid: int) -> Tuple[float, float] | None:
    """(user, system) CPU seconds used so far by ``pid`` (Linux /proc), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from #3 (state) on
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def wait_idle(pids: List[int], timeout: float = 30.0, interval: float = 0.1) -> float:
    """Wait until ``pids`` together use under 20% of a core over ``interval``; seconds waited.

    After a load run ends, the server may still be working through requests queued by
    clients that have gone away; the next measurement must not start on top of them.
    """
    t0 = time.monotonic()

    def total() -> float:
        return sum(sum(t) for t in (cpu_times(p) for p in pids) if t is not None)

    before = total()
    while time.monotonic() - t0 < timeout:
        time.sleep(interval)  # a sampling interval, not a guess at readiness
        now = total()
        if now - before < 0.2 * interval:
            break
        before = now
    return time.monotonic() - t0


def describe(pid: int) -> str:
    """A short label for a process: its command line, trimmed."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    cmd = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(raw.decode().split("\0")))
    return cmd.strip()[:80]


class Server:
    """``with Server(...) as s:`` -> a ready server at ``s.url``; stopped (SIGTERM) on exit."""

    def __init__(
        self,
        base_dir: Path,
        workers: int = 2,
        threads: int = 1,
        serve_cmd: str | None = None,
        log_path: Path | None = None,
        ready_timeout: float = 120.0,
        extra_env: Dict[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.extra_env = dict(extra_env or {})
        self.workers = workers
        self.threads = threads
        self.serve_cmd = serve_cmd or default_serve_cmd()
        self.log_path = Path(log_path or self.base_dir / "server.log")
        self.ready_timeout = ready_timeout
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.startup_s = float("nan")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        if not Path(self.serve_cmd).exists():
            raise FileNotFoundError(
                f"{self.serve_cmd} not found: install eikit into this venv (scripts/setup)"
            )
        self.port = free_port()
        env = server_env(self.base_dir, self.port, self.workers, self.threads)
        env.update(self.extra_env)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop(); kept on restart
        t0 = time.monotonic()
        # Own session, so a server that ignores SIGTERM can be cleaned up as a group.
        self.proc = subprocess.Popen(
            [self.serve_cmd],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        ready = wait_ready(self.url, t0 + self.ready_timeout, exited(self.proc))
        if ready.status == 200:
            self.startup_s = time.monotonic() - t0
            return
        if not ready.timed_out:
            raise RuntimeError(
                f"server {ready.why_not} before it was ready; log:\n{self.log_tail()}"
            )
        self.stop()
        raise TimeoutError(
            f"server not ready after {self.ready_timeout:.0f}s ({ready.why_not}); log:\n"
            + self.log_tail()
        )

    def gone(self, grace: float = 0.0) -> bool:
        """True if the server process has exited (waiting up to ``grace`` s for it to)."""
        if self.proc is None:
            return True
        if grace <= 0:
            return self.proc.poll() is not None
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            return False
        return True

    def pids(self) -> List[int]:
        if not self.proc:
            return []
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self, timeout: float = 30.0) -> int | None:
        if not self.proc:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(
                    f"  server did not exit {timeout:.0f}s after SIGTERM; killing its group",
                    file=sys.stderr,
                )
                os.killpg(self.proc.pid, signal.SIGKILL)
                rc = self.proc.wait(timeout=10)
        # Processes left in the server's own session after it exited: a server bug; say so.
        try:
            os.killpg(self.proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            pass
        else:
            msg = "  WARNING: server exited but left processes behind; killing them"
            print(msg, file=sys.stderr)
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return rc

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
