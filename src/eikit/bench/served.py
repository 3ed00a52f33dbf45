"""A model server started to be measured: any ``serve`` command (this environment's, or
another one's, for comparing releases) on a free loopback port, its time to the first good
prediction, its process tree, and a clean stop."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from eikit import procs
from eikit.bench.load import Request
from eikit.local import free_port

HOST = "127.0.0.1"
POLL = 0.01  # seconds between two tries of the first prediction


def default_command() -> List[str]:
    """This environment's ``serve``: the interpreter running eikit, so a venv is kept."""
    return [sys.executable, "-m", "eikit", "serve"]


class Served:
    """``serve`` on ``base_dir`` (SAGEMAKER_BASE_DIR) as a child process of its own session."""

    def __init__(
        self,
        base_dir: Path,
        command: Optional[Sequence[str]] = None,
        env: Optional[Dict[str, str]] = None,
        log: Optional[Path] = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.command = list(command or default_command())
        self.extra_env = dict(env or {})
        self.log_path = log
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self.first_ok_s = float("nan")  # start to the first 2xx prediction
        self._log: Optional[IO[bytes]] = None

    @property
    def url(self) -> str:
        return "http://%s:%d" % (HOST, self.port)

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    def pids(self) -> List[int]:
        return procs.tree(self.pid) if self.process is not None else []

    def pick_port(self) -> int:
        """A free loopback port for this start (a server with limits of its own on ports
        picks among those it accepts)."""
        return free_port(HOST)

    def start(self, probe: Request, timeout: float = 300.0) -> float:
        """Start the server and send ``probe`` (its URL's path, here) until it is answered
        2xx; returns the seconds from start to that answer. An answer other than 2xx or 503
        (loading) is a RuntimeError: measuring it would measure failures."""
        self.port = self.pick_port()
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update(
            SAGEMAKER_BASE_DIR=str(self.base_dir),
            SAGEMAKER_BIND_TO_PORT=str(self.port),
            EIKIT_HOST=HOST,
            PYTHONUNBUFFERED="1",
        )
        sink: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = sink = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        began = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # so a server that leaves children can be stopped whole
        )
        parts = urlsplit(probe.url)
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        deadline = began + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "the server exited with %s before its first prediction (%s)%s"
                    % (self.process.returncode, last, self._tail())
                )
            status, text = self._try(probe, path)
            if 200 <= status < 300:
                self.first_ok_s = time.monotonic() - began
                return self.first_ok_s
            if status and status != 503:  # 503: still loading; anything else is the answer
                self.stop()
                raise RuntimeError("the server answers the request with %s" % text)
            last = text
            time.sleep(POLL)  # polling interval; readiness is decided by the answer
        self.stop()
        raise TimeoutError(
            "no good prediction within %gs (last: %s)%s" % (timeout, last, self._tail())
        )

    def _try(self, probe: Request, path: str) -> Tuple[int, str]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request(probe.method, path, probe.body, dict(probe.headers))
            answer = connection.getresponse()
            body = answer.read()
            return answer.status, "HTTP %d %s" % (answer.status, body[:200].decode("latin-1"))
        except (OSError, http.client.HTTPException) as exc:
            return 0, type(exc).__name__
        finally:
            connection.close()

    def _tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "; log:\n" + "\n".join(text)

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        """SIGTERM, wait, then SIGKILL the session; returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # anything it left behind
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode
