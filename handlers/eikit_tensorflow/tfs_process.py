"""One TF Serving process and its ports: started by a thread that stays with it (so
``PR_SET_PDEATHSIG``, which follows the forking thread, fires only when the worker dies),
in a session of its own, its output kept in a file for the error messages.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from eikit.errors import ConfigurationError, EikitError

STOP_WAIT = 5.0


class ServingError(EikitError):
    """The TF Serving binary could not serve the models: it exited, refused a model, or
    did not serve them within the start-up timeout. The message carries its output."""

    code = "tf_serving_error"


# --- ports ----------------------------------------------------------------------------


def port_pairs(safe_port_range: str) -> int:
    """How many workers' (gRPC, REST) pairs ``low-high`` holds."""
    low, high = (int(part) for part in safe_port_range.split("-"))
    return max(0, (high - low + 1) // 2)


def ports(settings: Any, worker: int) -> Tuple[int, int]:
    """(gRPC, REST) for worker ``worker``: from ``SAGEMAKER_SAFE_PORT_RANGE`` as AWS takes
    them (``low + 2i``, ``low + 2i + 1``), else two free loopback ports."""
    if settings.safe_port_range:
        low, high = (int(part) for part in settings.safe_port_range.split("-"))
        grpc_port = low + 2 * worker
        if grpc_port + 1 > high:
            raise ConfigurationError(
                "not enough ports in SAGEMAKER_SAFE_PORT_RANGE=%s for worker %d (two each)"
                % (settings.safe_port_range, worker)
            )
        return grpc_port, grpc_port + 1
    held = []
    try:
        for _ in range(2):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return held[0].getsockname()[1], held[1].getsockname()[1]
    finally:
        for sock in held:
            sock.close()


def in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- the process ----------------------------------------------------------------------


def _death_signal() -> Optional[Callable[[], None]]:
    """What the child runs between fork and exec: ask for SIGKILL when its parent thread
    dies (Linux ``PR_SET_PDEATHSIG``), and exit if the worker is already gone. Resolved in
    the parent, so the child imports and allocates nothing (other threads may hold locks
    at the fork)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def setup() -> None:
        prctl(1, kill)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the worker died before the line above ran
            os._exit(1)

    return setup


class Binary:
    """One TF Serving process: started and waited on by its own thread, which lives as long
    as the process does (PR_SET_PDEATHSIG follows the thread that forked)."""

    def __init__(self, argv: List[str], env: Dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self.process: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self.closing = False
        self.on_exit: Optional[Any] = None  # called with the exit code, unless closing
        self._started = threading.Event()
        self.exited = threading.Event()  # set once the process is reaped
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(
            target=self._run, args=(env,), name="tf-serving-watch", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise ServingError("cannot start %s: %s" % (argv[0], self._error))

    def _run(self, env: Dict[str, str]) -> None:
        try:
            with open(self.log_path, "ab") as output:  # the child keeps its own descriptor
                self.process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    close_fds=True,
                    start_new_session=True,  # group signals to eikit do not reach it
                    preexec_fn=_death_signal(),
                )
        except (OSError, ValueError) as exc:
            self._error = exc
            return
        finally:
            self._started.set()
        self.returncode = self.process.wait()
        self.exited.set()
        if not self.closing and self.on_exit is not None:
            self.on_exit(self.returncode)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.returncode is None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_bytes()[-16384:].decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        self.closing = True
        if self.process is None or self.returncode is not None:
            return
        try:
            self.process.terminate()
            self.process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        except OSError:
            pass
