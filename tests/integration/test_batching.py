"""Dynamic batching (SAGEMAKER_TS_BATCH_SIZE, SAGEMAKER_TS_MAX_BATCH_DELAY) end to end: real
servers, real HTTP, many clients at once. Batches are seen where they run (the model or the
script writes down what it got), never inferred from timings."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests

from tests.integration.conftest import ModelTree, expected
from tests.integration.mme import endpoints
from tests.prometheus import samples

# A long delay, so that requests sent together land in one batch however slow the machine.
BATCHED = {"SAGEMAKER_TS_BATCH_SIZE": "8", "SAGEMAKER_TS_MAX_BATCH_DELAY": "400"}

# model_fn (not a request hook: the default hooks still stack) wraps the model so that each
# forward pass writes down how many rows it got.
RECORDING = """
import os
import torch

class Recording(torch.nn.Module):
    def __init__(self, inner, log):
        super().__init__()
        self.inner = inner
        self.log = log

    def forward(self, x):
        with open(self.log, "a") as out:
            out.write("%d\\n" % (x.shape[0] if x.dim() > 1 else 1))
        return self.inner(x)

def model_fn(model_dir):
    inner = torch.jit.load(os.path.join(model_dir, "model.pt"))
    return Recording(inner, os.path.join(model_dir, "batches.log"))
"""

Sent = Tuple[bytes, str]  # body, content type
Answer = Tuple[int, str, bytes]  # status, content type, body


def send_together(url: str, bodies: List[Sent], accept: Optional[str] = None) -> List[Answer]:
    """Every request at once (one thread each, released together); answers in order."""
    gate = threading.Barrier(len(bodies))

    def one(item: Sent) -> Answer:
        body, content_type = item
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        gate.wait(timeout=60)
        reply = requests.post(url + "/invocations", data=body, headers=headers, timeout=60)
        return reply.status_code, reply.headers.get("content-type", ""), reply.content

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


def rows_seen(tree: ModelTree) -> List[int]:
    path = tree.model_dir / "batches.log"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def mixed_requests(count: int) -> List[Sent]:
    """Distinct inputs of one or two rows, some CSV, some that no model takes."""
    bodies: List[Sent] = []
    for i in range(count):
        rows = [[i, i + 0.25, -i, 2.5 * i]] * (1 + i % 2)
        if i % 7 == 3:
            bodies.append((b'{"not json', "application/json"))
        elif i % 7 == 5:
            bodies.append((json.dumps([[i, 1.0, 2.0]]).encode(), "application/json"))  # 3 wide
        elif i % 5 == 4:
            bodies.append(("\n".join(",".join(map(str, r)) for r in rows).encode(), "text/csv"))
        else:
            bodies.append((json.dumps(rows).encode(), "application/json"))
    return bodies


def test_batched_answers_equal_unbatched_for_many_clients(tmp_path: Path, start: Callable) -> None:
    answers: Dict[str, List[Answer]] = {}
    trees = {}
    requests_sent = mixed_requests(40)
    for name, env in (("off", {}), ("on", BATCHED)):
        tree = ModelTree(tmp_path / name)
        tree.script(RECORDING)
        trees[name] = tree
        endpoint = start(tree, env=env)
        answers[name] = send_together(endpoint.url, requests_sent)
    assert answers["on"] == answers["off"]
    statuses = [status for status, _, _ in answers["on"]]
    assert statuses.count(200) >= 25 and 400 in statuses
    good = [(sent, got) for sent, got in zip(requests_sent, answers["on"]) if got[0] == 200]
    for (body, content_type), (_, _, answer) in good[:5]:
        if content_type == "application/json":
            assert json.loads(answer) == expected(json.loads(body))
    assert max(rows_seen(trees["off"])) <= 2  # one request per forward pass
    assert max(rows_seen(trees["on"])) > 2  # several requests stacked in one


def test_bad_request_in_a_batch_gets_400_and_its_neighbours_200(
    tree: ModelTree, start: Callable
) -> None:
    tree.script(RECORDING)
    endpoint = start(tree, env=BATCHED)
    bodies: List[Sent] = [
        (json.dumps([[i, 0, 0, 0]]).encode(), "application/json") for i in range(7)
    ]
    bodies.insert(3, (b"[[1, 2", "application/json"))
    answers = send_together(endpoint.url, bodies)
    assert answers[3][0] == 400, answers[3]
    assert json.loads(answers[3][2])["code"]
    for i, (status, _, body) in enumerate(answers[:3] + answers[4:]):
        assert status == 200, body
        assert json.loads(body) == expected([[i, 0, 0, 0]])
    assert max(rows_seen(tree)) > 1
    # Metrics count each request of a batch, by its own status.
    found = samples(requests.get(endpoint.url + "/metrics", timeout=10).text)
    assert found['eikit_requests_total{status="200"}'] == 7
    assert found['eikit_requests_total{status="400"}'] == 1
    assert found['eikit_request_duration_seconds_count{phase="total"}'] == 8
    assert found['eikit_request_duration_seconds_count{phase="predict"}'] == 7  # not the 400
    # The batch-size histogram counts the 8 requests, in fewer batches than requests.
    assert found["eikit_batch_size_sum{}"] == 8
    assert 0 < found["eikit_batch_size_count{}"] < 8


def test_a_lone_request_is_answered(tree: ModelTree, start: Callable) -> None:
    env = {"SAGEMAKER_TS_BATCH_SIZE": "64", "SAGEMAKER_TS_MAX_BATCH_DELAY": "300"}
    endpoint = start(tree, env=env)
    reply = endpoint.invoke(b"[[1, 2, 3, 4]]", timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json() == expected([[1, 2, 3, 4]])


# --- batch hooks: the script opts in and gets lists -----------------------------------

BATCH_SCRIPT = """
import json
import os
import torch

BATCH_HOOKS = True

def input_fn(inputs, content_types):
    records = [json.loads(body) for body in inputs]
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "batches.log"), "a") as out:
        out.write(json.dumps([record["id"] for record in records]) + "\\n")
    if any(record["id"] == "boom" for record in records):
        raise ValueError("this batch held boom")
    return records, torch.tensor([record["x"] for record in records], dtype=torch.float32)

def predict_fn(data, model):
    records, x = data
    with torch.no_grad():
        return records, model(x)

def output_fn(prediction, accepts):
    records, y = prediction
    answers = []
    for record, row, accept in zip(records, y.tolist(), accepts):
        if record["id"] == "refused":
            answers.append(ValueError("refused alone"))
        else:
            answers.append(json.dumps({"id": record["id"], "y": row, "accept": accept}))
    return answers
"""


def batches_logged(tree: ModelTree) -> List[List[str]]:
    path = tree.model_dir / "code" / "batches.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def record(ident: str, i: int) -> Sent:
    return json.dumps({"id": ident, "x": [i, i, 1, 2]}).encode(), "application/json"


def test_batch_hooks_get_the_requests_in_order_and_answer_each(
    tree: ModelTree, start: Callable
) -> None:
    tree.script(BATCH_SCRIPT)
    endpoint = start(tree, env=BATCHED)
    sent = [record("req-%d" % i, i) for i in range(24)]
    answers = send_together(endpoint.url, sent)
    for i, (status, _, body) in enumerate(answers):
        assert status == 200, body
        got = json.loads(body)
        assert got["id"] == "req-%d" % i  # its own answer, not a neighbour's
        assert got["y"] == expected([[i, i, 1, 2]])[0]
        assert got["accept"] == "application/json"
    batches = batches_logged(tree)
    assert sorted(ident for batch in batches for ident in batch) == sorted(
        "req-%d" % i for i in range(24)
    )  # each request in exactly one batch: none dropped, none run twice
    assert max(len(batch) for batch in batches) > 1
    for batch in batches:  # in the order they were queued (ids here go up with the order
        assert len(batch) <= 8  # within a batch only if sent in that order; size is bounded)


def test_batch_hooks_error_fails_its_batch_and_an_answer_can_fail_alone(
    tree: ModelTree, start: Callable
) -> None:
    tree.script(BATCH_SCRIPT)
    endpoint = start(tree, env=BATCHED)
    sent = [record("req-%d" % i, i) for i in range(12)]
    sent[4] = record("boom", 4)
    sent[9] = record("refused", 9)
    answers = dict(zip((json.loads(body)["id"] for body, _ in sent), answers_of(endpoint, sent)))
    doomed = {ident for batch in batches_logged(tree) if "boom" in batch for ident in batch}
    assert "boom" in doomed
    for ident, (status, _, body) in answers.items():
        if ident in doomed:
            assert status == 500, (ident, body)  # the script failed on the whole batch
            assert "Traceback" not in body.decode()
        elif ident == "refused":
            assert status == 500 and b"refused alone" in body, body  # its own error alone
        else:
            assert status == 200 and json.loads(body)["id"] == ident
    assert endpoint.invoke(record("after", 1)[0]).status_code == 200


def answers_of(endpoint: Any, sent: List[Sent]) -> List[Answer]:
    return send_together(endpoint.url, sent)


def test_batch_hooks_work_with_batching_off(tree: ModelTree, start: Callable) -> None:
    tree.script(BATCH_SCRIPT)
    endpoint = start(tree)
    reply = endpoint.invoke(record("solo", 3)[0])
    assert reply.status_code == 200, reply.text
    assert reply.json()["id"] == "solo"
    assert batches_logged(tree) == [["solo"]]


PER_REQUEST_SCRIPT = """
import json
import torch

def input_fn(body, content_type):
    record = json.loads(body)
    return record["id"], torch.tensor([record["x"]], dtype=torch.float32)

def predict_fn(data, model):
    ident, x = data
    with torch.no_grad():
        return ident, model(x)

def output_fn(prediction, accept):
    ident, y = prediction
    return json.dumps({"id": ident, "y": y.tolist()[0]})
"""


def test_per_request_hooks_run_once_per_request_in_a_batch(
    tree: ModelTree, start: Callable
) -> None:
    tree.script(PER_REQUEST_SCRIPT)
    endpoint = start(tree, env=BATCHED)
    answers = send_together(endpoint.url, [record("r%d" % i, i) for i in range(16)])
    for i, (status, _, body) in enumerate(answers):
        assert status == 200, body
        assert json.loads(body) == {"id": "r%d" % i, "y": expected([[i, i, 1, 2]])[0]}


CRASHING_SCRIPT = BATCH_SCRIPT.replace(
    '    if any(record["id"] == "boom"',
    '    if any(record["id"] == "crash" for record in records):\n'
    "        os._exit(3)\n"
    '    if any(record["id"] == "boom"',
)


def test_a_worker_that_dies_mid_batch_fails_that_batch_and_is_replaced(
    tree: ModelTree, start: Callable
) -> None:
    tree.script(CRASHING_SCRIPT)
    endpoint = start(tree, env=BATCHED)
    sent = [record("c%d" % i, i) for i in range(6)]
    sent[2] = record("crash", 2)
    answers = send_together(endpoint.url, sent)
    statuses = {json.loads(body)["id"]: got[0] for (body, _), got in zip(sent, answers)}
    assert statuses["crash"] == 500
    doomed = {ident for batch in batches_logged(tree) if "crash" in batch for ident in batch}
    for ident, status in statuses.items():
        assert status == (500 if ident in doomed else 200), statuses
    endpoint.server.wait_ready(120)
    assert endpoint.invoke(record("later", 1)[0]).status_code == 200


def save_random_mlp(model_dir: Path) -> None:
    import torch

    torch.manual_seed(7)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    torch.jit.script(mlp.eval()).save(str(model_dir / "model.pt"))


def test_a_float_model_answers_as_unbatched_to_the_last_rounding(
    tmp_path: Path, start: Callable
) -> None:
    """Real weights: a larger batch may take another BLAS kernel, whose float32 sums round
    differently in the last bits; each answer is its own request's, within that rounding."""
    import numpy as np

    rng = np.random.default_rng(3)
    bodies = [
        (json.dumps(rng.uniform(-3, 3, (1 + i % 3, 64)).tolist()).encode(), "application/json")
        for i in range(48)
    ]
    answers = {}
    for name, env in (("off", {}), ("on", {**BATCHED, "SAGEMAKER_TS_BATCH_SIZE": "16"})):
        tree = ModelTree(tmp_path / name)
        (tree.model_dir / "model.pt").unlink()
        save_random_mlp(tree.model_dir)
        endpoint = start(tree, env=env)
        answers[name] = send_together(endpoint.url, bodies)
    for on, off in zip(answers["on"], answers["off"]):
        assert on[0] == off[0] == 200
        np.testing.assert_allclose(json.loads(on[2]), json.loads(off[2]), rtol=1e-5, atol=1e-6)


SLOW_SCRIPT = BATCH_SCRIPT.replace(
    '    if any(record["id"] == "boom"',
    '    if any(record["id"] == "slow" for record in records):\n'
    "        import time\n"
    "        time.sleep(120)\n"
    '    if any(record["id"] == "boom"',
)


def test_a_batch_past_the_timeout_answers_504_to_each_of_its_requests(
    tree: ModelTree, start: Callable
) -> None:
    tree.script(SLOW_SCRIPT)
    endpoint = start(tree, env={**BATCHED, "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"})
    sent = [record("t%d" % i, i) for i in range(5)]
    sent[1] = record("slow", 1)
    answers = send_together(endpoint.url, sent)
    statuses = {json.loads(body)["id"]: got[0] for (body, _), got in zip(sent, answers)}
    doomed = {ident for batch in batches_logged(tree) if "slow" in batch for ident in batch}
    assert "slow" in doomed
    for ident, status in statuses.items():
        assert status == (504 if ident in doomed else 200), statuses
    endpoint.server.wait_ready(120)
    assert endpoint.invoke(record("after", 1)[0]).status_code == 200


def test_a_stop_signal_serves_the_requests_waiting_for_a_batch(
    tree: ModelTree, start: Callable
) -> None:
    env = {"SAGEMAKER_TS_BATCH_SIZE": "8", "SAGEMAKER_TS_MAX_BATCH_DELAY": "3000"}
    endpoint = start(tree, env=env)
    result: Dict[str, Any] = {}

    def client() -> None:
        result["reply"] = endpoint.invoke(b"[[1, 2, 3, 4]]", timeout=60)

    thread = threading.Thread(target=client)
    thread.start()
    wait_queued(endpoint.url, 1)  # the request waits in the frontend for its batch to fill
    endpoint.server.process.send_signal(signal.SIGTERM)
    thread.join(60)
    assert not thread.is_alive()
    assert result["reply"].status_code == 200, result["reply"].text
    assert result["reply"].json() == expected([[1, 2, 3, 4]])
    assert endpoint.server.process.wait(60) == 0


def test_each_model_of_a_multi_model_endpoint_batches_its_own_requests(tmp_path: Path) -> None:
    servers = endpoints(tmp_path)
    start = next(servers)
    try:
        mme = start(BATCHED)
        for name in ("a", "b"):
            path = mme.make(name, script=RECORDING)
            assert mme.load(name, path).status_code == 200
        gate = threading.Barrier(24)

        def one(i: int) -> Tuple[int, Any]:
            name = "ab"[i % 2]
            gate.wait(timeout=60)
            reply = mme.invoke(name, json.dumps([[i, 1, 2, 3]]).encode(), header=bool(i % 3))
            return reply.status_code, reply.json()

        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(one, range(24)))
        for i, (status, body) in enumerate(answers):
            assert status == 200, body
            assert body == expected([[i, 1, 2, 3]])
        for name in ("a", "b"):  # each model stacked its own requests, 12 in all
            seen = [
                int(n)
                for n in (mme.base / "models" / name / "model" / "batches.log").read_text().split()
            ]
            assert sum(seen) == 12 and max(seen) > 1
    finally:
        next(servers, None)


def wait_queued(url: str, count: int) -> None:
    """Until ``count`` requests wait in the frontend for their batch."""
    deadline = time.monotonic() + 60
    while True:
        found = samples(requests.get(url + "/metrics", timeout=10).text)
        if found.get("eikit_queue_depth{}") == count:
            return
        assert time.monotonic() < deadline, "never saw %d requests queued" % count
        time.sleep(0.02)


def test_batch_hooks_get_the_requests_in_the_order_they_came(
    tree: ModelTree, start: Callable
) -> None:
    tree.script(BATCH_SCRIPT)
    env = {"SAGEMAKER_TS_BATCH_SIZE": "8", "SAGEMAKER_TS_MAX_BATCH_DELAY": "5000"}
    endpoint = start(tree, env=env)
    with ThreadPoolExecutor(6) as pool:
        futures = []
        for i in range(6):  # each sent once the one before it waits in the queue
            futures.append(pool.submit(endpoint.invoke, record("o%d" % i, i)[0], timeout=60))
            wait_queued(endpoint.url, i + 1)
        answers = [future.result() for future in futures]
    assert [answer.json()["id"] for answer in answers] == ["o%d" % i for i in range(6)]
    assert batches_logged(tree) == [["o%d" % i for i in range(6)]]  # one batch, in order
