"""Prometheus metrics, request ids and the access log of a real server."""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Dict

import requests

from tests import prometheus
from tests.integration.test_lifecycle import _alive, _children

SCRIPT = """
import os, torch
def input_fn(input_data, content_type, context):
    if input_data == "fail":
        raise RuntimeError("the script failed on purpose")
    if input_data == "exit":
        os._exit(3)
    return torch.tensor([[1.0, 2.0, 3.0, 4.0]])
def output_fn(prediction, accept, context):
    return {"request_id": context.get_request_id(0), "y": prediction.tolist()}
"""


def samples(endpoint) -> Dict[str, float]:
    """``name{label="v",...}`` -> value, from a scrape of /metrics."""
    answer = requests.get(endpoint.url + "/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return prometheus.samples(answer.text)


def test_metrics_count_requests_by_status_and_time_each_phase(tree, start):
    endpoint = start(tree)  # no script: the default hooks
    for _ in range(3):
        assert endpoint.invoke(b"[[1, 2, 3, 4]]").status_code == 200
    assert endpoint.invoke(b"[[1, 2, 3]]").status_code == 400  # the wrong shape
    assert endpoint.invoke(b"x", content_type="image/gif").status_code == 415
    assert endpoint.invoke(b"1" * (7 * 2**20)).status_code == 413  # refused by the frontend
    found = samples(endpoint)
    assert found['eikit_requests_total{status="200"}'] == 3
    assert found['eikit_requests_total{status="400"}'] == 1
    assert found['eikit_requests_total{status="415"}'] == 1
    assert found['eikit_requests_total{status="413"}'] == 1
    # every request has a total; only those that reached a worker have the other phases,
    # and only those that got through a phase are timed in it
    assert found['eikit_request_duration_seconds_count{phase="total"}'] == 6
    assert found['eikit_request_duration_seconds_count{phase="queue"}'] == 5
    assert found['eikit_request_duration_seconds_count{phase="decode"}'] == 3
    assert found['eikit_request_duration_seconds_count{phase="predict"}'] == 3
    assert found['eikit_request_duration_seconds_count{phase="encode"}'] == 3
    assert found['eikit_request_duration_seconds_sum{phase="total"}'] > 0
    assert found["eikit_model_load_seconds_count{}"] == 1
    assert found["eikit_workers{}"] == 1 and found["eikit_workers_ready{}"] == 1
    assert found["eikit_queue_depth{}"] == 0 and found["eikit_inflight{}"] == 0


def test_worker_restarts_are_counted_by_reason(tree, start):
    tree.script(SCRIPT)
    endpoint = start(tree)
    workers = _children(endpoint.server.process.pid)
    assert endpoint.invoke(b"exit").status_code == 500
    deadline = time.monotonic() + 120
    while samples(endpoint).get("eikit_model_load_seconds_count{}", 0) < 2:
        assert time.monotonic() < deadline, endpoint.log()
        time.sleep(0.1)
    found = samples(endpoint)
    assert found['eikit_worker_restarts_total{reason="crash"}'] == 1
    assert not any(_alive(pid) for pid in workers)


def test_metrics_can_be_turned_off(tree, start):
    endpoint = start(tree, {"EIKIT_METRICS": "false"})
    assert requests.get(endpoint.url + "/metrics", timeout=10).status_code == 404


def test_every_response_carries_a_request_id_that_the_log_lines_name(tree, start):
    tree.script(SCRIPT)
    endpoint = start(tree, {"EIKIT_ACCESS_LOG": "true"})
    answers = [
        endpoint.invoke(b"[1]"),
        endpoint.invoke(b"fail"),
        endpoint.invoke(b"x", content_type="image/gif"),
        endpoint.ping(),
        requests.get(endpoint.url + "/nowhere", timeout=10),
        requests.get(endpoint.url + "/invocations", timeout=10),
        requests.head(endpoint.url + "/ping", timeout=10),
    ]
    request_ids = [answer.headers.get("x-request-id") for answer in answers]
    assert all(request_ids) and len(set(request_ids)) == len(request_ids), request_ids
    ok, failed = answers[0], answers[1]
    # the script sees the same id as the client
    assert ok.json()["request_id"] == ok.headers["x-request-id"]
    # An access line is written once its answer is sent: the client may read the log first.
    deadline = time.monotonic() + 30
    while not all(request_id in endpoint.log() for request_id in request_ids):
        assert time.monotonic() < deadline, endpoint.log()
        time.sleep(0.05)
    log = endpoint.log()
    # the worker's error line and the access line of that request both name it
    failed_lines = [line for line in log.splitlines() if failed.headers["x-request-id"] in line]
    assert any("worker-0 request=" in line and "request failed" in line for line in failed_lines)
    assert any('eikit.access: 127.0.0.1 "POST /invocations" 500' in line for line in failed_lines)
    for answer, request_id in zip(answers, request_ids):
        line = [line for line in log.splitlines() if "eikit.access" in line and request_id in line]
        assert len(line) == 1, (request_id, log)
        assert " %d " % answer.status_code in line[0]


def test_a_client_request_id_is_kept_when_usable_and_replaced_when_not(tree, start):
    tree.script(SCRIPT)
    endpoint = start(tree)
    mine = endpoint.invoke(b"[1]", headers={"X-Request-Id": "trace-42.a:b"})
    assert mine.headers["x-request-id"] == "trace-42.a:b" == mine.json()["request_id"]
    amzn = endpoint.invoke(b"[1]", headers={"X-Amzn-RequestId": "7f3c-11"})
    assert amzn.headers["x-request-id"] == "7f3c-11"
    for hostile in ("a b", "x" * 129, "a\tb", '"quoted"'):
        answer = endpoint.invoke(b"[1]", headers={"X-Request-Id": hostile})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] != hostile
        assert re.match(r"^[0-9a-f]{8}-[0-9a-f]+$", answer.headers["x-request-id"])


def test_no_access_log_unless_asked(tree, start):
    endpoint = start(tree)
    assert endpoint.invoke(b"[[1, 2, 3, 4]]").status_code == 200
    assert "eikit.access" not in endpoint.log()
    endpoint.server.process.send_signal(signal.SIGTERM)
    assert endpoint.server.process.wait(60) == 0
    assert os.path.exists(endpoint.log_path)
