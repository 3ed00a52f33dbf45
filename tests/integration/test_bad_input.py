"""Issue 6's bad bodies through a real server: each is the client's error (400/413) with a
JSON body naming the problem, never a 500 or 507, and the server keeps serving."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest

from tests.integration.conftest import expected

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]


def npy_with_header(header: str, data: bytes) -> bytes:
    raw = header.encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(raw).to_bytes(2, "little") + raw + data


def npz_of_zeros(size: int) -> bytes:
    """An NPZ whose one member inflates to ``size`` zero bytes, written without holding them."""
    out = io.BytesIO()
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d,), }\n" % size
    chunk = bytes(1 << 20)
    archive = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9)
    with archive, archive.open("x.npy", "w", force_zip64=True) as member:
        member.write(npy_with_header(header, b""))
        for _ in range(size >> 20):
            member.write(chunk)
    return out.getvalue()


@pytest.fixture(scope="module")
def bombs() -> dict:
    return {"1.0 GiB": npz_of_zeros(1 << 30), "64.0 MiB": npz_of_zeros(64 << 20)}


def assert_client_error(answer, status: int, *words: str) -> str:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == ("payload_too_large" if status == 413 else "bad_request")
    for word in words:
        assert word in body["error"], body["error"]
    assert "Traceback" not in answer.text
    return body["error"]


def test_issue_6_bodies_are_client_errors(tree, start, bombs):
    endpoint = start(tree)

    # CSV: a bare \r ends a row; one that leaves an empty cell is named
    ok = endpoint.invoke(b"1,2,3,4\r0,0,0,0\r", "text/csv")
    assert ok.status_code == 200 and ok.json() == expected(ROWS)
    assert_client_error(endpoint.invoke(b"1,2,3,4\r,1,2,3\n", "text/csv"), 400, "line 2, column 1")
    # CSV: a field over 128 KiB
    long_field = b"1,2,3," + b"4" * (128 * 1024 + 1) + b"\n"
    assert_client_error(endpoint.invoke(long_field, "text/csv"), 400, "field limit (131072)")

    # NPY: a header numpy's loader fails on with tokenize.TokenError
    token_error = npy_with_header("{'descr': '<f8',\n", b"")
    assert_client_error(endpoint.invoke(token_error, "application/x-npy"), 400, "header")
    # NPY: 3.6 TiB declared, 16 bytes sent (was 507 after trying to allocate it)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 500000), }\n"
    huge = npy_with_header(header, b"\0" * 16)
    assert_client_error(endpoint.invoke(huge, "application/x-npy"), 400, "3.6 TiB", "16 bytes")

    # JSON nested 1,000 deep (was RecursionError, 500)
    deep = b"[" * 1000 + b"1" + b"]" * 1000
    assert_client_error(endpoint.invoke(deep), 400, "deeper than 100 levels")
    # an empty JSON lines body is refused when decoding, as an empty CSV body is
    assert_client_error(endpoint.invoke(b"", "application/jsonlines"), 400, "empty")
    assert_client_error(endpoint.invoke(b"\n", "text/csv"), 400, "empty")

    # NPZ bombs: ~1 MB that inflates to 1 GiB, ~64 KB to 64 MiB: refused before inflating
    assert len(bombs["1.0 GiB"]) < 2 * 1024 * 1024 and len(bombs["64.0 MiB"]) < 128 * 1024
    for name, body in bombs.items():
        message = assert_client_error(endpoint.invoke(body, "application/x-npz"), 413, name)
        assert "EIKIT_MAX_DECOMPRESSED_MB" in message

    # still healthy, and a real NPZ still works
    assert endpoint.ping().status_code == 200
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.array(ROWS, dtype=np.float32))
    answer = endpoint.invoke(buffer.getvalue(), "application/x-npz")
    assert answer.status_code == 200 and answer.json() == expected(ROWS)
    # no request content reached the log in full (the 128 KiB field least of all)
    assert "4" * 1000 not in endpoint.log()
    assert max(map(len, endpoint.log().splitlines())) < 2000


def test_non_finite_predictions_are_strict_json(tree, start):
    tree.script(
        """
        import numpy as np

        def predict_fn(data, model):
            return np.array([[float("nan"), float("inf")], [-float("inf"), 1.5]], np.float32)
        """
    )
    endpoint = start(tree)
    strict = {"parse_constant": lambda name: pytest.fail("non-strict JSON: %s" % name)}

    answer = endpoint.invoke(json.dumps(ROWS).encode())
    assert answer.status_code == 200
    assert json.loads(answer.content, **strict) == [[None, None], [None, 1.5]]
    lines = endpoint.invoke(json.dumps(ROWS).encode(), accept="application/jsonlines")
    assert [json.loads(line, **strict) for line in lines.content.splitlines()] == [
        [None, None],
        [None, 1.5],
    ]
    # CSV keeps them, as Python writes them, and reads them back
    csv = endpoint.invoke(json.dumps(ROWS).encode(), accept="text/csv")
    values = [[float(cell) for cell in line.split(",")] for line in csv.text.split()]
    assert math.isnan(values[0][0]) and values[0][1] == math.inf and values[1] == [-math.inf, 1.5]
