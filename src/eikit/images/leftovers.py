"""Containers that outlive the process that started them, and how they are removed.

Every container eikit starts says who started it, in labels: ``eikit.local=true``,
``eikit.owner.host``, ``eikit.owner.pid``, ``eikit.owner.started`` (that process's start
time: with the pid it names one process for good) and ``eikit.owner.command``.

The first container a process starts also starts its reaper (``python -m
eikit.images.leftovers``), in a session of its own, so the Ctrl-C meant for the command
does not reach it. The reaper holds the read end of a pipe whose only writer is this
process: when this process ends, however it ends (SIGKILL included), the pipe reads EOF and
the reaper removes every container still labelled with this process as its owner, then
exits. testcontainers' Ryuk does the same with a socket.

What a reaper could not remove (the engine was down, the machine restarted) is removed by
``eikit local --cleanup`` and at the start of every ``eikit local --image``: containers
whose owner has ended. Containers without owner labels (an older eikit) are left alone.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from eikit.images.build import EngineUnavailable, open_engine
from eikit.procs import alive, start_time

LOCAL = "eikit.local"
OWNER_HOST = "eikit.owner.host"
OWNER_PID = "eikit.owner.pid"
OWNER_STARTED = "eikit.owner.started"
OWNER_COMMAND = "eikit.owner.command"
COMMAND_CHARS = 300
ENGINE_TIMEOUT_S = 30

GONE, ALIVE, UNKNOWN = "gone", "alive", "unknown"


def process_started(pid: int) -> str:
    """``pid``'s start time as UTC text to the 1/100 s ('unknown' without /proc)."""
    when = start_time(pid)
    if when is None:
        return "unknown"
    seconds, centis = divmod(int(round(when * 100)), 100)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return "%s.%02dZ" % (moment.strftime("%Y-%m-%dT%H:%M:%S"), centis)


def owner_labels() -> Dict[str, str]:
    """The labels of a container this process starts."""
    pid = os.getpid()
    command = " ".join(getattr(sys, "orig_argv", None) or sys.argv)
    return {
        LOCAL: "true",
        OWNER_HOST: socket.gethostname(),
        OWNER_PID: str(pid),
        OWNER_STARTED: process_started(pid),
        OWNER_COMMAND: command[:COMMAND_CHARS],
    }


def owner_state(labels: Dict[str, str]) -> Tuple[str, str]:
    """(GONE, ALIVE or UNKNOWN, why) for a container's owner, by its labels."""
    host, pid_text = labels.get(OWNER_HOST), labels.get(OWNER_PID, "")
    if not host or not pid_text.isdigit():
        return UNKNOWN, "no owner label (started by an older eikit)"
    if host != socket.gethostname():
        return UNKNOWN, "started on %s, not here" % host
    pid = int(pid_text)
    if not alive(pid):
        return GONE, "pid %d, which started it, has ended" % pid
    started, now = labels.get(OWNER_STARTED, "unknown"), process_started(pid)
    if "unknown" not in (started, now) and started != now:
        return GONE, "pid %d, which started it, has ended (the pid is reused)" % pid
    return ALIVE, "pid %d, which started it, is running" % pid


# --- the reaper of this process --------------------------------------------------------------

_lock = threading.Lock()
_reaper: Dict[str, Any] = {}  # owner pid, the pipe's write end, the reaper process


def ensure_reaper() -> None:
    """Start this process's reaper unless it runs (call before creating a container)."""
    with _lock:
        process = _reaper.get("process")
        if _reaper.get("owner") == os.getpid() and process is not None and process.poll() is None:
            return
        _forget()
        labels = owner_labels()
        read_end, write_end = os.pipe()  # not inherited by other children (PEP 446)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "eikit.images.leftovers"]
                + [labels[OWNER_PID], labels[OWNER_STARTED], labels[OWNER_HOST]],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        _reaper.update(owner=os.getpid(), pipe=write_end, process=process)


def _forget() -> None:
    """Drop a reaper that is not ours (we are a fork) or has ended; close our pipe end."""
    pipe = _reaper.pop("pipe", None)
    if pipe is not None:
        with contextlib.suppress(OSError):
            os.close(pipe)
    _reaper.clear()


if hasattr(os, "register_at_fork"):
    # A forked child must not hold its parent's pipe open: the parent's reaper would wait on
    # the child too. The child starts its own reaper when it starts a container.
    os.register_at_fork(after_in_child=_forget)


def reap(owner_pid: str, owner_started: str, host: str) -> int:
    """The reaper: wait for EOF on standard input, then remove the owner's containers."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while os.read(0, 4096):
        pass
    try:
        client = open_engine("DockerClient", ENGINE_TIMEOUT_S)
    except EngineUnavailable as exc:
        _tell("cannot remove the containers pid %s left behind: %s" % (owner_pid, exc))
        return 1
    try:
        mine = [
            "%s=%s" % (OWNER_PID, owner_pid),
            "%s=%s" % (OWNER_STARTED, owner_started),
            "%s=%s" % (OWNER_HOST, host),
        ]
        for container in client.containers.list(all=True, filters={"label": mine}):
            if _remove(container):
                _tell(
                    "removed container %s: pid %s, which started it, ended without "
                    "removing it" % (container.short_id, owner_pid)
                )
    except Exception as exc:  # the engine went away meanwhile
        _tell("cannot remove the containers pid %s left behind: %s" % (owner_pid, exc))
        return 1
    finally:
        client.close()
    return 0


def _remove(container: Any) -> bool:
    from docker.errors import NotFound

    try:
        container.remove(force=True)
    except NotFound:  # removed meanwhile
        return False
    return True


def _tell(line: str) -> None:
    try:
        sys.stderr.write("eikit: %s\n" % line)
        sys.stderr.flush()
    except OSError:  # whoever read our owner's output has gone
        pass


# --- eikit local --cleanup --------------------------------------------------------------------


def remove_leftovers(client: Any, say: Callable[[str], None], report_kept: bool = True) -> int:
    """Remove the containers eikit started whose owner has ended; how many were removed.
    ``report_kept``: also say which were kept, and why."""
    removed = 0
    kept: List[str] = []
    for container in client.containers.list(all=True, filters={"label": LOCAL + "=true"}):
        labels = dict(container.labels or {})
        state, why = owner_state(labels)
        if state == GONE:
            if _remove(container):
                removed += 1
                say(
                    "removed container %s (%s): %s; started %s by: %s"
                    % (
                        container.short_id,
                        container.status,
                        why,
                        labels.get(OWNER_STARTED, "?"),
                        labels.get(OWNER_COMMAND, "?"),
                    )
                )
        elif state == UNKNOWN:
            kept.append(
                "kept container %s (%s): %s; docker rm -f %s removes it"
                % (container.short_id, container.status, why, container.short_id)
            )
        else:
            kept.append("kept container %s (%s): %s" % (container.short_id, container.status, why))
    if report_kept:
        for line in kept:
            say(line)
    return removed


def cleanup_command(say: Callable[[str], None]) -> int:
    """``eikit local --cleanup``: exit status."""
    try:
        client = open_engine("DockerClient", ENGINE_TIMEOUT_S)
    except EngineUnavailable as exc:
        say(str(exc))
        return 1
    try:
        removed = remove_leftovers(client, say)
    finally:
        client.close()
    say("removed %d container(s) left behind by eikit" % removed)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        sys.stderr.write("usage: python -m eikit.images.leftovers OWNER_PID STARTED HOST\n")
        return 2
    return reap(*args)


if __name__ == "__main__":
    sys.exit(main())
