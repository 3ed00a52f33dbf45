"""A worker process as the frontend holds it: its pid, how it ended, and a way to kill it.

A spawned worker is the frontend's own child (a ``Popen``). A forked one is the template
process's child (``eikit.server.template``), which the frontend can neither wait for nor
safely signal by pid: the template, its parent, reports its exit and kills it on request
(a pid its parent has not yet reaped names that process and no other).
"""

from __future__ import annotations

import abc
import asyncio
import subprocess
from typing import Callable, Optional


class WorkerHandle(abc.ABC):
    """What the pool needs of a worker process."""

    pid = 0

    @abc.abstractmethod
    def poll(self) -> Optional[int]:
        """The exit code (negative: the signal that killed it), None while it runs."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL it, unless it has already ended."""

    @abc.abstractmethod
    async def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Its exit code once it ended; ``asyncio.TimeoutError`` after ``timeout``."""


class SpawnedHandle(WorkerHandle):
    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.pid = process.pid

    def poll(self) -> Optional[int]:
        return self.process.poll()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    async def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            raise asyncio.TimeoutError() from None


class ForkedHandle(WorkerHandle):
    def __init__(self, pid: int, killer: Callable[[int], None]) -> None:
        self.pid = pid
        self.returncode: Optional[int] = None
        self._killer = killer
        self._ended: asyncio.Future = asyncio.get_running_loop().create_future()

    def ended(self, code: Optional[int]) -> None:
        """The template reaped it (or died, taking it along)."""
        if not self._ended.done():
            self.returncode = code
            self._ended.set_result(code)

    def poll(self) -> Optional[int]:
        return self.returncode

    def kill(self) -> None:
        if not self._ended.done():
            self._killer(self.pid)

    async def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        return await asyncio.wait_for(asyncio.shield(self._ended), timeout)
