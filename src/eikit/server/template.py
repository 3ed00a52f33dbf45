"""The frontend's end of the template process (``EIKIT_WORKER_START=fork``).

One template per server, shared by every pool (a multi-model endpoint's models too):
``serve`` starts it before the frontend imports itself (``early_template``), or it is
started on the first worker's start; it has imported eikit and the framework, and forks
each worker from itself, so workers share its pages and skip the framework's import.
It must be started from the event loop's thread: PDEATHSIG fires when the *thread* that
started a process ends, and the loop's thread lives as long as the server.

A model whose ``code/``, ``code/lib`` or requirements hold its own copy of a package the
template imported gets spawned workers (they import that copy, as they always did).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from eikit.server import early_template
from eikit.server.handles import ForkedHandle
from eikit.settings import Settings

log = logging.getLogger(__name__)

STOP_WAIT = 5.0  # for the template to leave once told to (its workers have stopped)


class TemplateUnavailable(Exception):
    """The template could not be started or died: spawn instead (``reason`` says why)."""


class Template:
    def __init__(self, settings: Settings, runtime_name: str, modules: Tuple[str, ...]) -> None:
        self.settings = settings
        self.runtime_name = runtime_name
        self.modules = modules
        self.process: Optional[subprocess.Popen] = None
        self.control: Optional[socket.socket] = None
        self.packages: List[str] = []  # what it imported, once ready
        self.broken: Optional[str] = None  # it could not import: every worker is spawned
        self._ready: Optional[asyncio.Future] = None
        self._buffer = b""
        self._next_id = 0
        self._pending: Dict[int, asyncio.Future] = {}
        self._live: Dict[int, ForkedHandle] = {}
        self._old: List[subprocess.Popen] = []  # templates that died, to be waited for

    # --- start ---------------------------------------------------------------

    async def ready(self) -> List[str]:
        """Start the template if it is not running; its imported packages once ready."""
        if self.broken is not None:
            raise TemplateUnavailable(self.broken)
        if self._ready is None:
            ready = asyncio.get_running_loop().create_future()
            self._start()  # EMFILE, ENOMEM: raised to the pool, which retries
            self._ready = ready
        ready = self._ready
        try:
            return await asyncio.wait_for(asyncio.shield(ready), self.settings.startup_timeout)
        except asyncio.TimeoutError:
            self._fail_start("did not import within SAGEMAKER_STARTUP_TIMEOUT")
            raise TemplateUnavailable(self.broken or "") from None

    def _start(self) -> None:
        # The one ``serve`` started before the frontend imported itself, where there is
        # one (the first start only); else a new one.
        early = early_template.take()
        self.process, parent = early or early_template.spawn()
        init = {
            "runtime": self.runtime_name,
            "modules": list(self.modules),
            "log_level": self.settings.log_level,
        }
        parent.sendall(json.dumps({"init": init}).encode() + b"\n")
        parent.setblocking(False)
        self.control = parent
        asyncio.get_running_loop().add_reader(parent.fileno(), self._readable)
        log.debug(
            "template %s (pid %d): %s",
            "started with serve" if early else "started",
            self.process.pid,
            ", ".join(self.modules),
        )

    def _fail_start(self, reason: str) -> None:
        self.broken = "the template process %s" % reason
        log.warning("%s; workers are spawned instead", self.broken)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(TemplateUnavailable(self.broken))
            self._ready.exception()  # retrieved: nobody else may be waiting
        self._close()

    # --- fork, kill ----------------------------------------------------------

    async def fork(self, sock: socket.socket) -> ForkedHandle:
        """A worker forked from the template, on its end ``sock`` of the socketpair."""
        await self.ready()
        control = self.control
        if control is None:
            raise TemplateUnavailable("the template process is gone")
        self._next_id += 1
        ident = self._next_id
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))]
        try:
            control.sendmsg([json.dumps({"fork": ident}).encode() + b"\n"], fds)
        except OSError:
            self._pending.pop(ident, None)
            raise
        return await future

    def _kill(self, pid: int) -> None:
        if self.control is not None and pid in self._live:
            with contextlib.suppress(OSError):  # gone: PDEATHSIG took its workers with it
                self.control.send(json.dumps({"kill": pid}).encode() + b"\n")

    # --- messages ------------------------------------------------------------

    def _readable(self) -> None:
        assert self.control is not None
        try:
            data = self.control.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._message(json.loads(line))

    def _message(self, message: Dict[str, Any]) -> None:
        if "ready" in message:
            self.packages = list(message["ready"])
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(self.packages)
        elif "failed" in message:
            self._fail_start("could not import: %s" % message["failed"])
        elif "forked" in message:
            pid = int(message["pid"])
            handle = ForkedHandle(pid, self._kill)
            self._live[pid] = handle
            future = self._pending.pop(int(message["forked"]), None)
            if future is not None and not future.done():
                future.set_result(handle)
            else:  # its pool gave up waiting: nobody holds this worker
                self._kill(pid)
        elif "fork_failed" in message:
            future = self._pending.pop(int(message["fork_failed"]), None)
            if future is not None and not future.done():
                future.set_exception(OSError(message.get("error", "fork failed")))
        elif "exited" in message:
            gone = self._live.pop(int(message["exited"]), None)
            if gone is not None:
                gone.ended(int(message["code"]))

    def _lost(self) -> None:
        """The template died (or was stopped): its workers died with it (PDEATHSIG)."""
        if self.broken is None and (self._ready is None or not self._ready.done()):
            self._fail_start("exited while importing")
            return
        if self.process is not None:
            log.warning(
                "the template process (pid %d) exited; its workers went with it", self.process.pid
            )
        self._close()
        self._ready = None  # the next worker starts a new one

    def _close(self) -> None:
        if self.control is not None:
            asyncio.get_running_loop().remove_reader(self.control.fileno())
            self.control.close()
            self.control = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TemplateUnavailable("the template process is gone"))
        self._pending.clear()
        for handle in self._live.values():
            handle.ended(-signal.SIGKILL)
        self._live.clear()
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self._old.append(self.process)
            self.process = None

    # --- stop ----------------------------------------------------------------

    async def stop(self) -> None:
        """After every pool stopped: close its socket (it leaves), wait for it."""
        process = self.process
        if self.control is not None:
            asyncio.get_running_loop().remove_reader(self.control.fileno())
            self.control.close()
            self.control = None
        self.process = None
        loop = asyncio.get_running_loop()
        for old in self._old + ([process] if process is not None else []):
            try:
                await loop.run_in_executor(None, old.wait, STOP_WAIT)
            except subprocess.TimeoutExpired:
                old.kill()
                await loop.run_in_executor(None, old.wait)
        self._old.clear()


def shadowing(paths: Iterable[Optional[Path]], packages: Iterable[str]) -> Optional[str]:
    """The first of ``packages`` that one of ``paths`` (put before site-packages on a
    worker's ``sys.path``) holds a copy of, as ``"name in path"``; None: nothing shadowed."""
    wanted = set(packages)
    for path in paths:
        if path is None or not path.is_dir():
            continue
        try:
            entries = os.listdir(str(path))
        except OSError:
            continue
        for entry in entries:
            name = entry.split(".", 1)[0]
            if name in wanted and (entry == name or entry.endswith((".py", ".so", ".pyd"))):
                return "%s in %s" % (name, path)
    return None
