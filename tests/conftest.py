"""Every test leaves the process as it found it: signal dispositions, threads, containers.

An autouse fixture snapshots, before each test, the disposition of every catchable signal,
the live threads (by identity, daemon or not) and, where a Docker engine answers, the
containers labelled ``eikit.local=true``; after the test it fails the test, naming what
changed, if a signal's disposition differs, a thread it started is still alive, or a
container it started is still there. Threads and containers get a short grace to end
(a stopped server's thread may need a moment to return); then the leak is reported, the
signal dispositions are put back and the containers removed, so the next test starts clean.

Why: a test that leaves SIGINT ignored, a thread polling, or a container serving changes
what every later test sees, and the failure then shows up far from its cause.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Set

import pytest

from eikit.procs import tree

pytest_plugins = ["pytester"]  # tests/unit/test_leak_check.py runs this file on leaky tests

GRACE_S = float(os.environ.get("EIKIT_TEST_LEAK_GRACE_S", "10"))
LABEL = "eikit.local=true"
UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}


def _dispositions() -> Dict[int, Any]:
    found = {}
    for sig in sorted(signal.valid_signals() - UNCATCHABLE):
        try:
            found[int(sig)] = signal.getsignal(sig)
        except (OSError, ValueError):  # a number the platform lists but will not report
            continue
    return found


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


class _Engine:
    """One low-level client for the session, made on first use; None when no engine answers."""

    def __init__(self) -> None:
        self.checked = False
        self.api: Any = None

    def client(self) -> Any:
        if not self.checked:
            self.checked = True
            try:
                import docker

                api = docker.APIClient(version="auto", timeout=30)
                api.ping()
                self.api = api
            except Exception:  # no SDK, no engine: nothing to check
                self.api = None
        return self.api

    def containers(self) -> Optional[Dict[str, Dict[str, str]]]:
        """id -> labels of every container labelled ``eikit.local=true``; None: no engine."""
        api = self.client()
        if api is None:
            return None
        listed = api.containers(all=True, filters={"label": LABEL})
        return {c["Id"]: dict(c.get("Labels") or {}) for c in listed}

    def remove(self, ident: str) -> None:
        with contextlib.suppress(Exception):  # gone meanwhile
            self.api.remove_container(ident, force=True)


ENGINE = _Engine()


def _foreign(labels: Dict[str, str], ours: Set[int]) -> bool:
    """A container someone else started on the shared engine: its owner lives and is not
    this process or one of its children (a leaked container's owner is gone, or is us)."""
    try:
        pid = int(labels.get("eikit.owner.pid", ""))
    except ValueError:
        return False
    if pid in ours:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _new_containers(before: Optional[Dict[str, Dict[str, str]]]) -> Dict[str, Dict[str, str]]:
    if before is None:
        return {}
    now = ENGINE.containers() or {}
    ours = set(tree(os.getpid()))
    return {i: lbl for i, lbl in now.items() if i not in before and not _foreign(lbl, ours)}


@pytest.fixture(autouse=True)
def _leaves_no_process_state(request: pytest.FixtureRequest) -> Iterator[None]:
    dispositions = _dispositions()
    threads = set(threading.enumerate())
    containers = ENGINE.containers()
    yield
    deadline = time.monotonic() + GRACE_S
    while True:
        new_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
        new_containers = _new_containers(containers)
        if (not new_threads and not new_containers) or time.monotonic() > deadline:
            break
        for thread in new_threads:
            thread.join(timeout=0.1)
        if new_containers:
            time.sleep(0.1)
    problems: List[str] = []
    after = _dispositions()
    for number in sorted(set(dispositions) | set(after)):
        if dispositions.get(number) != after.get(number):
            problems.append(
                "%s disposition changed from %r to %r"
                % (_signal_name(number), dispositions.get(number), after.get(number))
            )
            with contextlib.suppress(KeyError, OSError, TypeError, ValueError):
                signal.signal(number, dispositions[number])
    for thread in new_threads:
        problems.append(
            "thread %r (%s) still running"
            % (thread.name, "daemon" if thread.daemon else "non-daemon")
        )
    for ident, labels in new_containers.items():
        owner = labels.get("eikit.owner.pid", "no owner label")
        problems.append("container %s (owner pid %s) left behind; removed" % (ident[:12], owner))
        ENGINE.remove(ident)
    if problems:
        pytest.fail(
            "%s left process-wide state behind:\n  %s"
            % (request.node.nodeid, "\n  ".join(problems)),
            pytrace=False,
        )


# --- the AWS account of the cloud tests ----------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Any]:
    """moto's server on loopback (tests/unit/cloud_server.py), once per session: started
    before any test's leak snapshot, so its thread belongs to the session, not a test."""
    pytest.importorskip("moto")
    from tests.unit.cloud_server import Server

    running = Server()
    yield running
    running.close()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_server: Any) -> Iterator[Any]:
    """A fresh account on the moto server: fake credentials, ``AWS_ENDPOINT_URL`` set, and
    the clients, stand-ins and progress output a cloud test uses (``cloud_account.Aws``)."""
    from tests.unit.cloud_account import moto_aws

    yield from moto_aws(monkeypatch, moto_server)
