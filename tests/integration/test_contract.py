"""The SageMaker hosting contract over real HTTP: routes, codecs, errors, limits."""

from __future__ import annotations

import io
import json

import numpy as np
import requests

from tests.integration.conftest import expected

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]


def test_default_hooks_speak_every_codec(tree, start):
    endpoint = start(tree)
    answer = endpoint.invoke(json.dumps(ROWS).encode())
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == expected(ROWS)

    csv = endpoint.invoke(b"1,2,3,4\n0,0,0,0\n", "text/csv", accept="text/csv")
    assert csv.headers["content-type"] == "text/csv"
    assert [list(map(float, line.split(","))) for line in csv.text.split()] == expected(ROWS)

    buffer = io.BytesIO()
    np.save(buffer, np.array(ROWS, dtype=np.float32))
    npy = endpoint.invoke(buffer.getvalue(), "application/x-npy", accept="application/x-npy")
    assert npy.headers["content-type"] == "application/x-npy"
    result = np.load(io.BytesIO(npy.content), allow_pickle=False)
    assert result.dtype == np.float32 and result.tolist() == expected(ROWS)

    buffer = io.BytesIO()
    np.savez(buffer, x=np.array(ROWS, dtype=np.float32))
    npz = endpoint.invoke(buffer.getvalue(), "application/x-npz", accept="application/x-npz")
    with np.load(io.BytesIO(npz.content), allow_pickle=False) as archive:
        assert archive[archive.files[0]].tolist() == expected(ROWS)

    lines = endpoint.invoke(
        b"[1,2,3,4]\n[0,0,0,0]\n", "application/jsonlines", accept="application/jsonlines"
    )
    assert [json.loads(line) for line in lines.text.splitlines()] == expected(ROWS)


def test_accept_negotiation_over_http(tree, start):
    endpoint = start(tree)
    body = json.dumps(ROWS).encode()
    assert endpoint.invoke(body, accept="*/*").headers["content-type"] == "application/json"
    picked = endpoint.invoke(body, accept="image/png, text/csv;q=0.9, application/json;q=0.5")
    assert picked.headers["content-type"] == "text/csv"
    refused = endpoint.invoke(body, accept="image/png")
    assert refused.status_code == 406
    assert refused.json()["code"] == "not_acceptable"


def test_client_errors_have_their_own_status_and_no_traceback(tree, start):
    endpoint = start(tree, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0.01"})
    bad = endpoint.invoke(b"{not json")
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"
    unsupported = endpoint.invoke(b"x", "image/png")
    assert unsupported.status_code == 415
    assert "image/png" in unsupported.json()["error"]
    too_big = endpoint.invoke(b"[" + b"1," * 10000 + b"1]")
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
    wrong_shape = endpoint.invoke(b"[[1, 2, 3]]")  # the model wants 4 features: the client's error
    assert wrong_shape.status_code == 400, wrong_shape.text
    assert "shape [1, 3] float32" in wrong_shape.json()["error"]
    assert "Traceback" not in wrong_shape.text
    assert requests.get(endpoint.url + "/nowhere", timeout=5).status_code == 404
    assert requests.get(endpoint.url + "/invocations", timeout=5).status_code == 405
    # The server is still healthy after all of that.
    assert endpoint.ping().status_code == 200
    assert endpoint.invoke(json.dumps(ROWS).encode()).json() == expected(ROWS)


def test_chunked_upload_over_the_limit_is_413(tree, start):
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


def test_execution_parameters_report_workers_and_limits(tree, start):
    endpoint = start(
        tree, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}
    )
    answer = requests.get(endpoint.url + "/execution-parameters", timeout=5).json()
    assert answer == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 20,
    }
