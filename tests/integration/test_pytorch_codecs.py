"""PyTorch's default hooks over real HTTP: every codec, Accept negotiation (the contract
every runtime passes is ``tests/contract``)."""

from __future__ import annotations

import io
import json

import numpy as np

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
