"""Faults after the model loaded must never become an outage (a real server, real faults).

The faults are made by a real user script: ``model_fn`` counts its calls in a file in the
model directory (shared by every worker of the server) and fails, hangs or is slow on the
calls the test names. Workers are killed with real signals; the frontend's file limit is
lowered with ``prlimit``.
"""

from __future__ import annotations

import http.client
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Set

import pytest
import requests

from eikit.local import ServerProcess
from tests.integration.test_lifecycle import _alive, _children

FAULTY = """
import fcntl, os, time, torch

def _spec_has(name, number):
    # "3" -> the 3rd call; "3-" -> the 3rd and every later one; "2,4" -> those two
    for part in os.environ.get(name, "").split(","):
        part = part.strip()
        if part.endswith("-") and number >= int(part[:-1]):
            return True
        if part and not part.endswith("-") and number == int(part):
            return True
    return False

def _call_number(model_dir):
    with open(os.path.join(model_dir, "calls"), "a+") as calls:
        fcntl.flock(calls, fcntl.LOCK_EX)
        calls.write("%d\\n" % os.getpid())
        calls.flush()
        calls.seek(0)
        return len(calls.read().split())

def model_fn(model_dir):
    number = _call_number(model_dir)
    if _spec_has("TEST_FAIL_CALLS", number):
        raise RuntimeError("transient load failure on call %d" % number)
    if _spec_has("TEST_HANG_CALLS", number):
        time.sleep(3600)
    if _spec_has("TEST_SLOW_CALLS", number):
        time.sleep(float(os.environ.get("TEST_SLOW_SECONDS", "4")))
    return torch.jit.load(os.path.join(model_dir, "model.pt"))

def input_fn(input_data, content_type):
    text = input_data  # application/json arrives as str, as from sagemaker-inference
    if text.startswith("sleep "):
        started = os.environ.get("TEST_STARTED_FILE")
        if started:
            with open(started, "a") as handle:
                handle.write("%d\\n" % os.getpid())
        time.sleep(float(text.split()[1]))
    return torch.zeros(1, 4)

def output_fn(prediction, accept, context):
    context.set_response_header(0, "X-Worker-Pid", str(os.getpid()))
    return "ok"
"""

TWO = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}


def _until(condition: Callable[[], object], timeout: float, what: str, log: Callable[[], str]):
    """Poll ``condition`` until it is true; fail with the server log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "%s did not happen; server log:\n%s" % (what, log())
        time.sleep(0.05)


def _ready_workers(endpoint) -> List[int]:
    """Worker PIDs of the server, once the log says as many were (re)loaded as are alive."""
    return sorted(pid for pid in _children(endpoint.server.process.pid) if _alive(pid))


def _replaced(endpoint) -> int:
    return endpoint.log().count("replaced and ready")


def _kill_one_worker(endpoint) -> int:
    pids = _ready_workers(endpoint)
    assert pids, endpoint.log()
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


class Traffic:
    """Requests and pings from a thread while a fault is handled: every answer is kept.

    ``kill_one_worker`` kills between two requests: a request running on a worker that is
    killed is answered 500 ("the worker died"), by design, and is not what these tests are
    about (the requests queued behind it are resent; see test_lifecycle)."""

    def __init__(self, endpoint) -> None:
        self.endpoint = endpoint
        self.invocations: List[int] = []
        self.pings: List[int] = []
        self.errors: List[str] = []
        self._stop = threading.Event()
        self._between_requests = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._between_requests:
                try:
                    self.invocations.append(self.endpoint.invoke(b"fast", timeout=60).status_code)
                    self.pings.append(self.endpoint.ping(timeout=30).status_code)
                except requests.RequestException as exc:  # unanswered: always a failure
                    self.errors.append(repr(exc))
            time.sleep(0.02)

    def kill_one_worker(self) -> int:
        with self._between_requests:
            pid = _kill_one_worker(self.endpoint)
            # Resume once the frontend saw it go: a request sent in between may reach the
            # dying process and be answered 500 like one it was running.
            _until(
                lambda: "(pid %d) exited" % pid in self.endpoint.log(),
                60,
                "the frontend to see worker %d exit" % pid,
                self.endpoint.log,
            )
            return pid

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)


def test_a_failed_reload_is_retried_while_the_other_worker_serves(tree, start):
    tree.script(FAULTY)
    # calls 1 and 2 are the first load; 3 is the replacement's first try
    endpoint = start(tree, dict(TWO, TEST_FAIL_CALLS="3"))
    with Traffic(endpoint) as traffic:
        killed = traffic.kill_one_worker()
        _until(lambda: _replaced(endpoint) >= 1, 120, "the replacement", endpoint.log)
        _until(lambda: len(traffic.pings) >= 3, 60, "pings after recovery", endpoint.log)
    log = endpoint.log()
    assert "transient load failure on call 3" in log and "retrying in" in log
    assert killed not in _ready_workers(endpoint) and len(_ready_workers(endpoint)) == 2
    # the other worker kept serving: no request and no ping failed, none went unanswered
    assert traffic.errors == []
    assert set(traffic.invocations) == {200} and set(traffic.pings) == {200}, log


def test_a_slot_that_keeps_failing_is_retried_past_the_bound_while_another_serves(tree, start):
    tree.script(FAULTY)
    env = dict(TWO, TEST_FAIL_CALLS="3-", EIKIT_MAX_RELOAD_FAILURES="2")
    endpoint = start(tree, env)
    with Traffic(endpoint) as traffic:
        traffic.kill_one_worker()
        _until(
            lambda: endpoint.log().count("could not be replaced") >= 3,
            120,
            "three failed reloads",
            endpoint.log,
        )
    assert endpoint.ping().status_code == 200
    assert traffic.errors == [] and set(traffic.invocations) == {200}, endpoint.log()
    assert "failed to load" not in endpoint.ping().text


def test_reloads_failing_with_no_worker_serving_mark_the_model_failed(tree, start):
    tree.script(FAULTY)
    env = {"TEST_FAIL_CALLS": "2-", "EIKIT_MAX_RELOAD_FAILURES": "2"}
    endpoint = start(tree, env)
    _kill_one_worker(endpoint)
    ping = endpoint.wait_failed(120)
    assert ping.json()["code"] == "model_load_failed"
    assert "EIKIT_MAX_RELOAD_FAILURES=2" in ping.json()["error"]
    assert "transient load failure on call 3" in ping.json()["error"]
    assert endpoint.log().count("could not be replaced") == 1  # then the second one failed it
    answer = endpoint.invoke(b"fast")
    assert answer.status_code == 503 and answer.json()["code"] == "model_load_failed"


def test_a_replacement_that_hangs_while_loading_is_killed_and_retried(tree, start):
    tree.script(FAULTY)
    # Generous: the first load of two workers must fit in it on a busy machine.
    env = dict(TWO, TEST_HANG_CALLS="3", SAGEMAKER_STARTUP_TIMEOUT="10")
    endpoint = start(tree, env)
    with Traffic(endpoint) as traffic:
        traffic.kill_one_worker()
        _until(lambda: _replaced(endpoint) >= 1, 120, "the replacement", endpoint.log)
    log = endpoint.log()
    assert "did not load within SAGEMAKER_STARTUP_TIMEOUT=10s" in log
    assert len(_ready_workers(endpoint)) == 2
    assert traffic.errors == [] and set(traffic.invocations) == {200}, log


def test_a_respawn_that_fails_for_lack_of_file_descriptors_is_retried(tree, start):
    tree.script(FAULTY)
    endpoint = start(tree, TWO)
    pid = endpoint.server.process.pid
    limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    # No new descriptor fits under 3: the replacement's socketpair fails with EMFILE.
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, limits[1]))
    try:
        _kill_one_worker(endpoint)
        _until(
            lambda: "Too many open files" in endpoint.log(), 60, "an EMFILE respawn", endpoint.log
        )
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
    _until(lambda: _replaced(endpoint) >= 1, 120, "the replacement", endpoint.log)
    assert "could not start a worker process" in endpoint.log()
    assert len(_ready_workers(endpoint)) == 2
    assert endpoint.ping().status_code == 200
    assert endpoint.invoke(b"fast").status_code == 200


def test_ping_stays_200_while_one_of_two_workers_is_replaced(tree, start):
    tree.script(FAULTY)
    endpoint = start(tree, dict(TWO, TEST_SLOW_CALLS="3-", TEST_SLOW_SECONDS="3"))
    with Traffic(endpoint) as traffic:
        traffic.kill_one_worker()
        _until(lambda: _replaced(endpoint) >= 1, 120, "the replacement", endpoint.log)
    assert len(traffic.pings) >= 2 and set(traffic.pings) == {200}, endpoint.log()
    assert traffic.errors == [] and set(traffic.invocations) == {200}


# --- signals to the whole process group ------------------------------------------------


def _start_in_own_group(tree, tmp_path: Path, env: Dict[str, str]):
    """A server leading its own session, as under a supervisor or a terminal."""
    settings = {"EIKIT_WORKER_THREADS": "1"}
    settings.update(env)
    server = ServerProcess(tree.base, settings)
    log_path = tmp_path / "group-server.log"
    server.process = subprocess.Popen(
        [sys.executable, "-m", "eikit", "serve"],
        env=server.env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return server, log_path


def _socket_inodes(pid: int) -> Set[str]:
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _accepted(pid: int, port: int, client_ports: Set[int]) -> int:
    """Connections from ``client_ports`` that the server process has accepted: its own
    sockets (by inode) for port ``port`` whose peer is one of them. A connection still in
    the kernel's accept queue has no inode yet, so it does not count."""
    owned = _socket_inodes(pid)
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if (
                    int(local.rsplit(":", 1)[1], 16) == port
                    and int(remote.rsplit(":", 1)[1], 16) in client_ports
                    and inode in owned
                ):
                    count += 1
    return count


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_process_group_drains_in_flight_requests(tree, tmp_path, sig):
    tree.script(FAULTY)
    started = tmp_path / "started"
    env = dict(TWO, EIKIT_WORKER_QUEUE="4", TEST_STARTED_FILE=str(started))
    server, log_path = _start_in_own_group(tree, tmp_path, env)
    log = lambda: log_path.read_text(errors="replace")  # noqa: E731
    try:
        assert server.wait_ready(120) == 200, log()
        workers = _children(server.process.pid)
        port = int(server.url.rsplit(":", 1)[1])
        client_ports: Set[int] = set()
        answers: List[object] = []

        def call() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
            try:
                connection.connect()
                client_ports.add(connection.sock.getsockname()[1])
                connection.request("POST", "/invocations", body=b"sleep 1")
                answers.append(connection.getresponse().status)
            except OSError as exc:
                answers.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        # all 8 connections accepted by the server, and both workers inside a request
        _until(
            lambda: (
                len(client_ports) == 8 and _accepted(server.process.pid, port, client_ports) == 8
            ),
            60,
            "8 accepted connections",
            log,
        )
        _until(
            lambda: started.exists() and len(started.read_text().split()) >= 2,
            60,
            "both workers busy",
            log,
        )
        os.killpg(server.process.pid, sig)
        for thread in threads:
            thread.join(120)
        assert answers == [200] * 8, log()
        assert server.process.wait(60) == 0, log()
        assert "replacing it" not in log() and "exited" not in log(), log()
        _until(lambda: not any(_alive(pid) for pid in workers), 10, "workers gone", log)
    finally:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def test_requests_cut_off_by_the_graceful_timeout_get_a_json_error(tree, start, tmp_path):
    tree.script(FAULTY)
    started = tmp_path / "started"
    endpoint = start(tree, {"EIKIT_GRACEFUL_TIMEOUT": "1", "TEST_STARTED_FILE": str(started)})
    result: Dict[str, requests.Response] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("answer", endpoint.invoke(b"sleep 20", timeout=90))
    )
    thread.start()
    _until(started.exists, 60, "the request to start", endpoint.log)
    endpoint.server.process.send_signal(signal.SIGTERM)
    thread.join(90)
    answer = result["answer"]
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == "model_not_ready"
    assert "EIKIT_GRACEFUL_TIMEOUT" in answer.json()["error"]
    assert endpoint.server.process.wait(60) == 0
