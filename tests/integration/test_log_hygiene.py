"""What clients send stays out of the log at INFO, and no request can blow the log up."""

from __future__ import annotations

import time

import requests

CELL = "q" * 130_000  # one CSV cell of 130 KB


def _wait_for(endpoint, text: str, count: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = endpoint.log()
        if log.count(text) >= count:
            return log
        assert time.monotonic() < deadline, "%r never logged %d times:\n%s" % (text, count, log)
        time.sleep(0.05)


def test_request_content_never_reaches_the_log_at_info(tree, start):
    # 20 is what the SageMaker SDK sets for logging.INFO
    endpoint = start(tree, {"SAGEMAKER_CONTAINER_LOG_LEVEL": "20"})
    before = len(endpoint.log())
    answer = endpoint.invoke(("1,2,%s,4\n" % CELL).encode(), content_type="text/csv")
    assert answer.status_code == 400
    assert answer.json()["code"] == "bad_request"
    assert len(answer.content) < 1000  # the client gets a bounded message
    huge = "\u00e9\u0080" * 30_000  # 60 KB header values; repr() would quadruple them
    answer = requests.post(
        endpoint.url + "/invocations",
        data=b"[[1,2,3,4]]",
        headers={"Content-Type": "application/json", "Accept": huge.encode("latin-1")},
        timeout=30,
    )
    assert answer.status_code == 406 and len(answer.content) < 5000
    answer = requests.post(
        endpoint.url + "/invocations",
        data=b"[[1,2,3,4]]",
        headers={"Content-Type": ("x/" + "z" * 60_000).encode()},
        timeout=30,
    )
    assert answer.status_code == 415 and len(answer.content) < 1000
    assert endpoint.invoke(b"[[1,2,3,4]]").status_code == 200  # still serving

    log = _wait_for(endpoint, "request rejected (", 3)
    assert "request rejected (400 bad_request)" in log
    assert "request rejected (406 not_acceptable)" in log
    assert "request rejected (415 unsupported_media_type)" in log
    for sent in ("q" * 20, "zzzzzzzzzz", "\\xe9\\x80", "\u00e9\u0080"):
        assert sent not in log
    assert len(log) - before < 2000, log[before:]


def test_a_log_level_between_names_serves(tree, start):
    endpoint = start(tree, {"SAGEMAKER_CONTAINER_LOG_LEVEL": "25"})
    assert endpoint.invoke(b"[[1,2,3,4]]").status_code == 200
    assert endpoint.invoke(b"not json").status_code == 400
    assert " INFO " not in endpoint.log()  # 25 is above INFO
