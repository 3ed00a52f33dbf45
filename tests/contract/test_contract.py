"""The SageMaker hosting contract over real HTTP, the same for every runtime: routes,
readiness, errors and their statuses, limits. Each framework's own request forms and
codecs have their own suites."""

from __future__ import annotations

import socket

import requests

from tests.contract.lib_rule import (
    SKIPS_REQUIREMENTS_BESIDE_LIB,
    write_code_with_lib_and_requirements,
)
from tests.frameworks import expected

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]


def test_ping_then_invocations_answer_in_the_frameworks_json(framework, tree, start):
    endpoint = start(tree)
    assert endpoint.ping().status_code == 200
    assert requests.head(endpoint.url + "/ping", timeout=5).status_code == 200
    answer = endpoint.invoke(framework.request(ROWS))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert framework.answer(answer.json()) == expected(ROWS)
    assert answer.headers["x-request-id"]


def test_client_errors_have_their_own_status_and_no_traceback(framework, tree, start):
    endpoint = start(tree, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0.01"})
    bad = endpoint.invoke(b"{not json")
    assert bad.status_code == 400, bad.text
    assert bad.json()["code"] == "bad_request"
    unsupported = endpoint.invoke(b"x", "image/png")
    assert unsupported.status_code == 415, unsupported.text
    assert "image/png" in unsupported.json()["error"]
    too_big = endpoint.invoke(b"[" + b"1," * 10000 + b"1]")
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
    # The model wants 4 features: 3 is the client's mistake, not the server's.
    wrong_shape = endpoint.invoke(framework.request([[1.0, 2.0, 3.0]]))
    assert wrong_shape.status_code == 400, wrong_shape.text
    assert "Traceback" not in wrong_shape.text
    refused = endpoint.invoke(framework.request(ROWS), accept="image/png")
    assert refused.status_code == 406, refused.text
    assert requests.get(endpoint.url + "/nowhere", timeout=5).status_code == 404
    not_allowed = requests.get(endpoint.url + "/invocations", timeout=5)
    assert not_allowed.status_code == 405 and "POST" in not_allowed.headers["allow"]
    # The server is still healthy after all of that.
    assert endpoint.ping().status_code == 200
    assert framework.answer(endpoint.invoke(framework.request(ROWS)).json()) == expected(ROWS)


def test_chunked_upload_over_the_limit_is_413(framework, tree, start):
    endpoint = start(tree, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0.01"})

    def chunks():
        for _ in range(100):
            yield b"1," * 100

    answer = requests.post(
        endpoint.url + "/invocations",
        data=chunks(),
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )
    assert answer.status_code == 413
    # The whole chunked body in one write: the server has all of it before it reads any
    # (a body that arrived whole once reached the worker past the limit).
    chunk = b"1," * 100
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(100)) + b"0\r\n\r\n"
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
    head += b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    for _ in range(5):
        with socket.create_connection((endpoint.server.host, endpoint.server.port), 10) as sock:
            sock.sendall(head + body)
            status_line = sock.makefile("rb").readline()
        assert status_line.startswith(b"HTTP/1.1 413"), status_line


def test_execution_parameters_report_workers_and_limits(framework, tree, start):
    endpoint = start(
        tree, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}
    )
    answer = requests.get(endpoint.url + "/execution-parameters", timeout=5).json()
    assert answer == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 20,
    }


def test_a_failing_model_fn_is_a_failed_ping_never_a_ready_one(framework, tree, start):
    tree.script(
        """
        def model_fn(model_dir):
            raise RuntimeError("no weights here")
        """
    )
    endpoint = start(tree, ready=False)
    failed = endpoint.wait_failed(180)
    assert "no weights here" in failed.text
    answer = endpoint.invoke(framework.request(ROWS))
    assert answer.status_code == 503, answer.text


def test_requirements_beside_lib_follow_the_frameworks_aws_rule(framework, tree, start, tmp_path):
    requirements = write_code_with_lib_and_requirements(tree.model_dir / "code", framework.name)
    target = tmp_path / "site"
    endpoint = start(tree, {"EIKIT_REQUIREMENTS_TARGET": str(target)})
    answer = endpoint.invoke(framework.request(ROWS))
    assert answer.status_code == 200, answer.text
    installed = (target / "eikit_req_probe.py").is_file()
    if SKIPS_REQUIREMENTS_BESIDE_LIB[framework.name]:
        assert not installed
        assert "ignoring %s" % requirements in endpoint.log()
    else:
        assert installed, endpoint.log()
        assert "requirements installed" in endpoint.log()
