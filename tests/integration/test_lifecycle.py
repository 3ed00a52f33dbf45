"""Readiness, timeouts, crashes and shutdown of a real server and its workers."""

from __future__ import annotations

import signal
import threading
import time

import requests

from eikit.procs import worker_pids

SLOW = """
import os, time, torch
def model_fn(model_dir):
    time.sleep(float(os.environ.get("TEST_LOAD_SECONDS", "0")))
    marker = os.path.join(model_dir, "loaded-once")
    if os.path.exists(marker):  # a replacement: as slow as a busy machine can make it
        time.sleep(float(os.environ.get("TEST_RELOAD_SECONDS", "0")))
    open(marker, "a").close()
    return torch.jit.load(os.path.join(model_dir, "model.pt"))
def input_fn(input_data, content_type):
    text = input_data  # application/json arrives as str, as from sagemaker-inference
    if text.startswith("sleep "):
        time.sleep(float(text.split()[1]))
    if text == "exit":
        os._exit(3)
    return torch.zeros(1, 4)
def output_fn(prediction, accept, context):
    context.set_response_header(0, "X-Worker-Pid", str(os.getpid()))
    return "ok"
"""


def _children(pid: int) -> set:
    """The worker PIDs of the server ``pid``: its children, or its template's (Linux /proc)."""
    return set(worker_pids(pid))


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ping_is_503_until_the_model_is_loaded(tree, start):
    tree.script(SLOW)
    endpoint = start(tree, {"TEST_LOAD_SECONDS": "3"}, ready=False)
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status = endpoint.ping().status_code
        except requests.ConnectionError:
            continue
        if not seen or seen[-1] != status:
            seen.append(status)
            if status == 503:
                # Requests during loading are refused, not queued forever.
                early = endpoint.invoke(b"hello")
                assert early.status_code == 503 and "loading" in early.json()["error"]
        if status == 200:
            break
    assert seen == [503, 200]


def test_ping_answers_fast_while_every_worker_is_busy(tree, start):
    tree.script(SLOW)
    endpoint = start(tree, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    threads = [threading.Thread(target=endpoint.invoke, args=(b"sleep 4",)) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # let both workers pick up a slow request
    started = time.monotonic()
    ping = endpoint.ping(timeout=2)
    assert ping.status_code == 200
    assert time.monotonic() - started < 0.5
    for thread in threads:
        thread.join()


def test_a_prediction_past_the_timeout_gets_504_and_a_new_worker(tree, start):
    tree.script(SLOW)
    endpoint = start(tree, {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"})
    first_pid = endpoint.invoke(b"fast").headers["x-worker-pid"]
    started = time.monotonic()
    slow = endpoint.invoke(b"sleep 30")
    assert slow.status_code == 504 and slow.json()["code"] == "prediction_timeout"
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _alive(int(first_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(first_pid))
    assert endpoint.server.wait_ready(60) == 200
    again = endpoint.invoke(b"fast")
    assert again.status_code == 200 and again.headers["x-worker-pid"] != first_pid
    assert "timed out" in endpoint.log() and "replaced and ready" in endpoint.log()


def test_a_crashed_worker_fails_its_request_and_is_replaced(tree, start):
    tree.script(SLOW)
    endpoint = start(tree)
    crashed = endpoint.invoke(b"exit")
    assert crashed.status_code == 500 and "died" in crashed.json()["error"]
    assert endpoint.server.wait_ready(60) == 200
    assert endpoint.invoke(b"fast").status_code == 200


def test_sigterm_drains_in_flight_requests_and_leaves_no_process(tree, start):
    tree.script(SLOW)
    endpoint = start(tree, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    process = endpoint.server.process
    workers = _children(process.pid)
    assert len(workers) == 2
    result = {}

    def slow_request():
        result["response"] = endpoint.invoke(b"sleep 2")

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert result["response"].status_code == 200  # drained, not dropped
    assert process.wait(30) == 0
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers), "orphan worker processes"


def test_a_killed_frontend_takes_its_workers_with_it(tree, start):
    endpoint = start(tree, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    process = endpoint.server.process
    workers = _children(process.pid)
    process.kill()
    process.wait(10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers)


def test_a_model_that_fails_to_load_keeps_ping_at_503(tree, start):
    (tree.model_dir / "model.pt").write_bytes(b"this is not a TorchScript archive")
    endpoint = start(tree, ready=False)
    ping = endpoint.wait_failed()
    assert ping.status_code == 503 and "failed to load" in ping.json()["error"]
    assert endpoint.server.process.poll() is None  # still up, still saying why


def test_startup_timeout_counts_as_a_failed_load(tree, start):
    tree.script(SLOW)
    endpoint = start(
        tree, {"TEST_LOAD_SECONDS": "60", "SAGEMAKER_STARTUP_TIMEOUT": "2"}, ready=False
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ping = endpoint.ping()
        except requests.ConnectionError:
            continue
        if "SAGEMAKER_STARTUP_TIMEOUT" in ping.text:
            break
        time.sleep(0.1)
    assert ping.status_code == 503 and "SAGEMAKER_STARTUP_TIMEOUT=2" in ping.json()["error"]


def test_requests_queued_behind_a_timed_out_one_are_resent_not_lost(tree, start):
    tree.script(SLOW)
    # The replacement takes longer to load than the timeout, as it does when the machine is
    # busy: the resent requests wait for it rather than time out in the queue.
    env = {
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2",
        "EIKIT_WORKER_QUEUE": "4",
        "TEST_RELOAD_SECONDS": "4",
    }
    endpoint = start(tree, env)
    results = {}

    def call(name, body):
        results[name] = endpoint.invoke(body, timeout=120)

    slow = threading.Thread(target=call, args=("slow", b"sleep 30"))
    slow.start()
    time.sleep(0.3)  # the slow one is running; these two queue behind it on the same worker
    fast = [threading.Thread(target=call, args=("fast%d" % i, b"fast")) for i in range(2)]
    for thread in fast:
        thread.start()
    for thread in [slow] + fast:
        thread.join(180)
    assert results["slow"].status_code == 504
    assert [results["fast%d" % i].status_code for i in range(2)] == [200, 200], endpoint.log()
    assert "loaded in" in endpoint.log()  # they were answered by the slow replacement
