"""Dynamic batching with each runtime's default hooks: many clients at once get the answers
they get with batching off, requests that agree are stacked into one model call (the
worker's DEBUG line says how many), and a bad request in a batch gets its own 400."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, List, Tuple

import requests

from tests.frameworks import Framework, expected
from tests.serving import ModelTree

BATCHED = {
    "SAGEMAKER_TS_BATCH_SIZE": "8",
    "SAGEMAKER_TS_MAX_BATCH_DELAY": "400",  # long: requests sent together share a batch
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "DEBUG",
}
STACKED = re.compile(r"batch(?: of \d+)?: (\d+) stacked")

Answer = Tuple[int, bytes]


def send_together(url: str, bodies: List[bytes]) -> List[Answer]:
    gate = threading.Barrier(len(bodies))

    def one(body: bytes) -> Answer:
        gate.wait(timeout=60)
        reply = requests.post(
            url + "/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        return reply.status_code, reply.content

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


def rows_of(i: int) -> List[List[float]]:
    return [[i, i + 0.5, -i, 2.0 * i]] * (1 + i % 2)


def test_batched_answers_equal_unbatched_and_requests_stack(
    framework: Framework, tmp_path: Path, start: Callable
) -> None:
    bodies = [framework.request(rows_of(i)) for i in range(16)]
    bodies[5] = b'{"instances": [[1, 2'  # malformed JSON
    bodies[11] = framework.request([[1.0, 2.0, 3.0]])  # three features: the model wants four
    answers = {}
    for name, env in (("off", {}), ("on", BATCHED)):
        endpoint = start(ModelTree(tmp_path / name, framework.save_model), env)
        answers[name] = send_together(endpoint.url, bodies)
        if name == "on":
            log = endpoint.wait_log(
                lambda text: any(int(n) > 1 for n in STACKED.findall(text)), "a stacked batch"
            )
            assert max(int(n) for n in STACKED.findall(log)) <= 8
    assert answers["on"] == answers["off"]
    for i, (status, body) in enumerate(answers["on"]):
        if i in (5, 11):
            assert status == 400, body
            assert json.loads(body)["code"]
        else:
            assert status == 200, body
            assert framework.answer(json.loads(body)) == expected(rows_of(i))
