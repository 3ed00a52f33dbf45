"""The template process: imports eikit and the framework once, then forks each worker.

Started by the frontend (``eikit.server.template``) as ``python -m eikit.server.forkserver
FD FRONTEND_PID``. It dies with the frontend (PDEATHSIG), and its workers die with it, so
none outlives the server. It never imports a user script (which may start threads), never
touches a device (each worker picks its own after the fork), and runs one thread: a fork
copies only the thread that calls it.

Over FD, one JSON object a line. From the frontend: ``{"init": ...}`` first, then
``{"fork": id}`` with the worker's socket attached (SCM_RIGHTS) and ``{"kill": pid}``.
To the frontend: ``{"ready": [modules]}`` or ``{"failed": reason}`` once, then
``{"forked": id, "pid": pid}`` and ``{"exited": pid, "code": code}``.
"""

from __future__ import annotations

import array
import importlib
import json
import os
import select
import signal
import socket
import sys
import sysconfig
import traceback
from typing import Any, Dict, List, Set

from eikit import logs
from eikit.runtime import find_runtime
from eikit.server import worker

FD_SIZE = array.array("i").itemsize


def loaded_packages() -> List[str]:
    """Top-level names of the imported modules that are not Python's own: a model whose
    ``code/`` or requirements hold one of them must get a spawned worker, which imports
    its copy, not the template's."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    names: Set[str] = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if "." in name or not path:
            continue
        if not os.path.realpath(path).startswith(stdlib + os.sep) or "site-packages" in path:
            names.add(name)
    return sorted(names)


def exit_code(status: int) -> int:
    """Like ``Popen.returncode``: the exit status, or minus the signal that killed it."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class Template:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: Set[int] = set()
        self.buffer = b""
        self.fds: List[int] = []  # received with fork requests, in order
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)

    def send(self, message: Dict[str, Any]) -> None:
        self.control.sendall(json.dumps(message).encode() + b"\n")

    def serve(self) -> int:
        signal.signal(signal.SIGCHLD, lambda sig, frame: None)
        signal.set_wakeup_fd(self.wake_write)
        while True:
            readable, _, _ = select.select([self.control, self.wake_read], [], [])
            if self.wake_read in readable:
                os.read(self.wake_read, 4096)
                self.reap()
            if self.control in readable and not self.receive():
                return 0  # the frontend closed its end: its workers are stopped

    def receive(self) -> bool:
        data, ancillary, _, _ = self.control.recvmsg(65536, socket.CMSG_SPACE(16 * FD_SIZE))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % FD_SIZE])
                self.fds.extend(fds)
        if not data:
            return False
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            request = json.loads(line)
            if "fork" in request:
                self.fork(request["fork"])
            elif "kill" in request:
                self.kill(int(request["kill"]))
        return True

    def fork(self, ident: int) -> None:
        fd = self.fds.pop(0)
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN, ENOMEM: the pool retries
            os.close(fd)
            self.send({"fork_failed": ident, "error": "%s: %s" % (type(exc).__name__, exc)})
            return
        if pid == 0:
            self.become_worker(fd)
        os.close(fd)
        self.children.add(pid)
        self.send({"forked": ident, "pid": pid})

    def become_worker(self, fd: int) -> None:
        """In the child: drop what is the template's, then be a worker (never returns)."""
        code = 70
        try:
            parent = os.getppid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.control.close()
            for own in [self.wake_read, self.wake_write, *self.fds]:
                os.close(own)
            reseed()
            code = worker.run(fd, parent)
        except SystemExit as exc:  # a script's sys.exit("why"): said as the interpreter would
            code = exit_status(exc)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def kill(self, pid: int) -> None:
        # Only a child not yet reaped: its pid cannot have been reused.
        if pid in self.children:
            os.kill(pid, signal.SIGKILL)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.send({"exited": pid, "code": exit_code(status)})


def exit_status(exc: SystemExit) -> int:
    """What the interpreter makes of an uncaught ``SystemExit``: its code, or 1 after
    printing a message."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def reseed() -> None:
    """Every worker gets random state of its own, as a spawned one would: ``random`` is
    reseeded by Python at fork, numpy's global generator is not."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def main(argv: List[str]) -> int:
    control = socket.socket(fileno=int(argv[0]))
    worker.die_with_parent(int(argv[1]))
    worker.ignore_stop_signals()
    reader = control.makefile("rb")
    line = reader.readline()
    reader.close()  # nothing else was sent before "ready"
    if not line:
        return 0  # started early and not wanted (eikit.server.early_template.discard)
    init = json.loads(line).get("init", {})
    logs.configure(init.get("log_level", "INFO"), role="template")
    try:
        runtime = find_runtime(init["runtime"])
        for name in init.get("modules", []):
            importlib.import_module(name)
    except Exception as exc:
        control.sendall(json.dumps({"failed": "%s: %s" % (type(exc).__name__, exc)}).encode())
        return 1
    del runtime
    template = Template(control)
    template.send({"ready": loaded_packages()})
    return template.serve()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
