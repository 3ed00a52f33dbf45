"""The template process, started before the frontend has imported itself.

A server's first answer waits on the template (``eikit.server.template``): it starts Python,
imports eikit (about 0.25 s), then the framework (torch: about 1 s), then forks the workers.
Started when the frontend is ready to fork, about 0.25 s after ``serve`` began, it did all
of that after the frontend's own imports. ``start``, the first thing ``serve`` does (this
module needs only the standard library), spawns it at once: it imports eikit while the
frontend does, then waits for its ``init`` line, which ``Template`` sends when it adopts it
(``take``). It imports no framework before that line, so nothing is guessed.

Where the frontend ends up not forking (``EIKIT_WORKER_START=spawn`` or a multi-model
endpoint as the settings read them, a runtime or accelerator whose workers are spawned,
a server that failed before its workers), ``discard`` kills it: it holds nothing yet.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Mapping, Optional, Tuple

Early = Tuple[subprocess.Popen, socket.socket]

_early: Optional[Early] = None
TRUE = ("1", "on", "t", "true", "y", "yes")  # what pydantic reads as true


def spawn() -> Early:
    """A template process waiting for its ``init`` line, and the frontend's end of its
    control socket (blocking). It dies with this process (PDEATHSIG), which must start
    it from the thread that runs the event loop: PDEATHSIG fires when that thread ends."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eikit.server.forkserver",
                str(child.fileno()),
                str(os.getpid()),
            ],
            pass_fds=(child.fileno(),),
            close_fds=True,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return process, parent


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a template is likely to be used, from the environment alone (the settings
    are not read yet; ``discard`` puts a wrong guess right)."""
    start = environ.get("EIKIT_WORKER_START", "fork").strip().lower()
    multi_model = environ.get("SAGEMAKER_MULTI_MODEL", "").strip().lower()
    return start != "spawn" and multi_model not in TRUE


def start() -> None:
    """Spawn the template now, where one is likely to be used; never fails ``serve``
    (the frontend spawns one later, as it always could)."""
    global _early
    if _early is not None or not wanted():
        return
    try:
        _early = spawn()
    except OSError:
        _early = None


def take() -> Optional[Early]:
    """The template started early, once; None when there is none (any more)."""
    global _early
    early, _early = _early, None
    if early is not None and early[0].poll() is not None:  # it died: a new one, then
        early[1].close()
        return None
    return early


def discard() -> None:
    """Kill and reap the template started early if nobody took it."""
    early = take()
    if early is None:
        return
    process, control = early
    control.close()
    if process.poll() is None:
        process.kill()
    process.wait()
