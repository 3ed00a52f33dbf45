"""Who owns a container, by its labels: a running process, one that has ended, one whose
pid now names another process, one on another host, or nobody (an older eikit)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from eikit.images import leftovers


def test_this_process_owns_what_it_labels() -> None:
    labels = leftovers.owner_labels()
    assert labels[leftovers.LOCAL] == "true"
    assert labels[leftovers.OWNER_PID] == str(os.getpid())
    assert labels[leftovers.OWNER_HOST] == socket.gethostname()
    assert labels[leftovers.OWNER_STARTED].endswith("Z")  # UTC, to the 1/100 s
    assert labels[leftovers.OWNER_STARTED] == leftovers.process_started(os.getpid())
    assert "pytest" in labels[leftovers.OWNER_COMMAND]
    assert leftovers.owner_state(labels) == (
        leftovers.ALIVE,
        "pid %d, which started it, is running" % os.getpid(),
    )


def test_an_ended_owner_and_a_reused_pid_are_gone() -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()
    labels = leftovers.owner_labels()
    state, why = leftovers.owner_state(dict(labels, **{leftovers.OWNER_PID: str(ended.pid)}))
    assert state == leftovers.GONE and "has ended" in why
    reused = dict(labels, **{leftovers.OWNER_STARTED: "2000-01-01T00:00:00.00Z"})
    assert leftovers.owner_state(reused) == (
        leftovers.GONE,
        "pid %d, which started it, has ended (the pid is reused)" % os.getpid(),
    )


def test_a_zombie_owner_is_gone() -> None:
    """Killed, not yet waited for by its parent: it serves nothing any more."""
    child = subprocess.Popen(["sleep", "600"])
    try:
        child.kill()
        deadline = time.monotonic() + 60
        while Path("/proc/%d/stat" % child.pid).read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)
        labels = dict(leftovers.owner_labels(), **{leftovers.OWNER_PID: str(child.pid)})
        labels[leftovers.OWNER_STARTED] = leftovers.process_started(child.pid)
        assert leftovers.owner_state(labels)[0] == leftovers.GONE
    finally:
        child.wait()


def test_unknown_owners_are_never_guessed() -> None:
    assert leftovers.owner_state({leftovers.LOCAL: "true"})[0] == leftovers.UNKNOWN
    elsewhere = dict(leftovers.owner_labels(), **{leftovers.OWNER_HOST: "another-host"})
    assert leftovers.owner_state(elsewhere) == (
        leftovers.UNKNOWN,
        "started on another-host, not here",
    )
