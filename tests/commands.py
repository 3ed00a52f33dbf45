"""An eikit command run as a user runs it, for tests that signal it at chosen moments.

``Command`` starts it (SIGINT inherited as default, or ignored as a non-interactive shell
leaves it for a background job), collects its output (stdout and stderr together) line by
line, waits for a line (a gate the test controls, never a sleep) and for the exit; on any
timeout the test fails with the command's whole output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional, Sequence

import pytest

# A non-interactive shell starts `cmd &` with SIGINT ignored; exec keeps it ignored.
IGNORING_SIGINT = ["bash", "-c", "trap '' INT; exec \"$@\"", "bash"]
INHERITED = ["default", "ignored"]


class Command:
    def __init__(
        self, argv: Sequence[str], sigint: str = "default", env: Optional[dict] = None
    ) -> None:
        assert sigint in INHERITED
        prefix = IGNORING_SIGINT if sigint == "ignored" else []
        self.argv = list(argv)
        self.lines: List[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            prefix + self.argv,
            env=dict(os.environ, **(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, name="test-command-output")
        self._reader.start()

    @classmethod
    def eikit(cls, *args: str, sigint: str = "default", env: Optional[dict] = None) -> Command:
        return cls([sys.executable, "-m", "eikit", *args], sigint, env)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def fail(self, what: str) -> None:
        pytest.fail(
            "%s\n--- whole output of %s ---\n%s" % (what, " ".join(self.argv), self.output()),
            pytrace=False,
        )

    def wait_for(self, text: str, timeout: float = 180) -> str:
        """The first line holding ``text``; fails if the command exits or time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None:
                    return found
                if not self._reader.is_alive():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        code = self.process.poll()
        self.fail(
            "no line with %r %s"
            % (text, "after %.0f s" % timeout if code is None else "before exit (code %s)" % code)
        )
        raise AssertionError  # unreachable: fail() raises

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 120) -> int:
        """The exit code; fails (and kills it) if it still runs after ``timeout``."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            self.fail("still running %.0f s after it was told to stop" % timeout)
        self._reader.join(timeout)  # the output ends when every holder of the pipe ends
        return code

    def close(self) -> None:
        """Kill it if it still runs, and stop reading (call in a finally)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._reader.join(60)
        if self.process.stdout is not None:
            self.process.stdout.close()
