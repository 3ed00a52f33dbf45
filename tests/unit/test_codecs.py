import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from eikit import codecs
from eikit.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType


def test_json_numbers_become_arrays_and_other_json_passes_through():
    array = codecs.decode(b"[[1, 2], [3, 4]]", "application/json; charset=utf-8")
    assert isinstance(array, np.ndarray) and array.shape == (2, 2)
    assert codecs.decode(b'{"text": "hi"}', "application/json") == {"text": "hi"}
    assert codecs.decode(b"[[1], [2, 3]]", "application/json") == [[1], [2, 3]]


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"{not json", "application/json"),
        (b'{"a": 1}\n{broken', "application/jsonlines"),
        (b"1,2\nx,y", "text/csv"),
        (b"not npy at all", "application/x-npy"),
        (b"not npz", "application/x-npz"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_malformed_bodies_are_bad_requests(body, content_type):
    with pytest.raises(BadRequest):
        codecs.decode(body, content_type)


def test_unknown_content_type_is_415():
    with pytest.raises(UnsupportedMediaType) as info:
        codecs.decode(b"x", "image/png")
    assert info.value.status == 415


def test_npy_never_unpickles():
    out = io.BytesIO()
    np.save(out, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadRequest):
        codecs.decode(out.getvalue(), "application/x-npy")


def test_roundtrips_keep_values_and_dtypes():
    array = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert codecs.decode(codecs.encode(array, codecs.NPY), codecs.NPY).dtype == np.int16
    npz = codecs.decode(codecs.encode({"x": array, "y": array * 2}, codecs.NPZ), codecs.NPZ)
    assert sorted(npz) == ["x", "y"] and (npz["y"] == array * 2).all()
    csv = codecs.decode(codecs.encode(array, codecs.CSV), codecs.CSV)
    assert csv.tolist() == array.astype(np.float32).tolist()
    lines = codecs.encode(array, codecs.JSONLINES)
    assert lines == b"[0,1,2]\n[3,4,5]\n"
    assert codecs.decode(lines, "application/jsonlines").tolist() == array.tolist()
    assert codecs.encode(b"raw", codecs.OCTET) == b"raw"
    assert codecs.decode(b"\x00\x01", codecs.OCTET) == b"\x00\x01"


def test_json_encodes_numpy_scalars_and_nested_values():
    assert codecs.encode({"p": np.float32(0.5), "v": np.array([1, 2])}, codecs.JSON) == (
        b'{"p":0.5,"v":[1,2]}'
    )


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("image/png, text/csv", "text/csv"),
        ("text/csv;q=0.5, application/x-npy", "application/x-npy"),
        ("application/*", "application/json"),
        ("text/html, */*", "application/json"),
    ],
)
def test_accept_negotiation(accept, expected):
    assert codecs.negotiate(accept, "application/json") == expected


def test_nothing_acceptable_is_406():
    with pytest.raises(NotAcceptable) as info:
        codecs.negotiate("image/png, text/html", "application/json")
    assert info.value.status == 406


# --- bad input is the client's error, and bounded (issue 6) ------------------------


def npy_with_header(header: str, data: bytes) -> bytes:
    raw = header.encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(raw).to_bytes(2, "little") + raw + data


def refused(body: bytes, content_type: str, limits=None) -> str:
    with pytest.raises(BadRequest) as info:
        codecs.decode(body, content_type, limits)
    assert info.value.status == 400 and len(info.value.message) < 400
    return info.value.message


def test_csv_bare_carriage_return_ends_a_row():
    assert codecs.decode(b"1,2\r3,4\r", codecs.CSV).tolist() == [[1, 2], [3, 4]]
    assert codecs.decode(b"\xef\xbb\xbf1,2\r\n\r\n3,4", codecs.CSV).tolist() == [[1, 2], [3, 4]]
    assert "line 2, column 1 is not a number: ''" in refused(b"1,2\r,3\n", codecs.CSV)


def test_csv_errors_name_the_problem_and_where():
    assert "field limit (131072)" in refused(b"1," + b"9" * 200_000 + b"\n", codecs.CSV)
    assert "line 2 has 3 fields; the first row has 2" in refused(b"1,2\n3,4,5\n", codecs.CSV)
    message = refused(b"1,2\n3," + b"x" * 100_000 + b"\n", codecs.CSV)
    assert "line 2, column 2 is not a number: 'xxx" in message and "100002 chars" in message
    assert "does not parse" in refused(b'1,"2"3\n', codecs.CSV)  # a quote inside a field
    assert "empty" in refused(b"\n\n", codecs.CSV)
    assert "not UTF-8" in refused(b"1,\xff\n", codecs.CSV)


def test_json_nested_past_the_limit_is_refused_before_parsing():
    assert "deeper than 100 levels" in refused(b"[" * 1000 + b"]" * 1000, codecs.JSON)
    assert "deeper than 100" in refused(b'{"a":' * 1000 + b"1" + b"}" * 1000, codecs.JSON)
    at_limit = b"[" * 100 + b"1" + b"]" * 100
    assert codecs.decode(at_limit, codecs.JSON) is not None  # numpy's 32 dims: left as lists
    assert codecs.json_depth(at_limit) == 100
    # brackets inside strings, escaped quotes included, do not count
    text = json.dumps(['[[[\\"' * 500]).encode()
    assert codecs.json_depth(text) == 1 and codecs.decode(text, codecs.JSON) == ['[[[\\"' * 500]


def test_json_past_the_interpreter_recursion_limit_is_400_not_500():
    lenient = codecs.Limits(max_json_depth=10**9)
    assert "not valid JSON" in refused(b"[" * 100_000 + b"]" * 100_000, codecs.JSON, lenient)
    assert "line 1" in refused(b"[" * 100_000 + b"]" * 100_000, codecs.JSONLINES, lenient)


def test_json_accepts_nan_and_infinity_on_input():
    array = codecs.decode(b"[NaN, Infinity, -Infinity, 1]", codecs.JSON)
    assert np.isnan(array[0]) and array[1] == np.inf and array[2] == -np.inf


def test_json_lines_empty_body_and_bad_line():
    assert refused(b"", codecs.JSONLINES) == "JSON lines body is empty"
    assert refused(b" \n\r\n", codecs.JSONLINES) == "JSON lines body is empty"
    assert "line 3 is not valid JSON" in refused(b"[1]\n[2]\n[3\n", codecs.JSONLINES)


def test_npy_header_that_does_not_parse_is_400():
    # numpy raises tokenize.TokenError here (its Python 2 header filter): a 500 before
    message = refused(npy_with_header("{'descr': '<f8',\n", b""), codecs.NPY)
    assert "header is not a Python literal" in message
    assert "keys" in refused(npy_with_header("{'descr': '<f8'}\n", b""), codecs.NPY)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }\n"
    for shape in ("(-1,)", "(True,)", "[3]", "(" + "1," * 40 + ")", "(" * 40 + ")" * 40):
        refused(npy_with_header(header % shape, b""), codecs.NPY)


def test_npy_declared_size_is_checked_before_allocating():
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 500000), }\n"
    message = refused(npy_with_header(header, b"\0" * 16), codecs.NPY)
    assert "3.6 TiB" in message and "16 bytes follow the header" in message
    body = codecs.encode(np.arange(4, dtype=np.float32), codecs.NPY)
    assert "16 bytes of data, but 15" in refused(body[:-1], codecs.NPY)
    assert "but 17 bytes" in refused(body + b"\0", codecs.NPY)  # trailing bytes too
    huge_empty = header.replace("1000000, 500000", "0, %d" % 2**62)
    assert "too large for numpy" in refused(npy_with_header(huge_empty, b""), codecs.NPY)


def test_npy_over_the_decompressed_limit_is_413():
    body = codecs.encode(np.zeros(1000, np.float64), codecs.NPY)
    with pytest.raises(PayloadTooLarge, match="EIKIT_MAX_DECOMPRESSED_MB"):
        codecs.decode(body, codecs.NPY, codecs.Limits(max_decompressed_bytes=7999))
    assert codecs.decode(body, codecs.NPY, codecs.Limits(max_decompressed_bytes=8000)).size == 1000


def test_npy_keeps_byte_order_fortran_order_and_records():
    for array in (
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.array([(1, 2.5)], dtype=[("a", "<i2"), ("b", "<f8")]),
    ):
        decoded = codecs.decode(codecs.encode(array, codecs.NPY), codecs.NPY)
        assert decoded.dtype == array.dtype and (decoded == array).all()
        assert decoded.flags.writeable


def test_npz_bomb_is_413_before_inflating():
    out = io.BytesIO()
    np.savez_compressed(out, x=np.zeros(256 * 1024 * 1024, np.uint8))
    assert len(out.getvalue()) < 300_000
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as info:
            codecs.decode(out.getvalue(), codecs.NPZ)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.status == 413 and "256.0 MiB" in info.value.message
    assert peak < 5 * 1024 * 1024


def test_npz_total_of_members_counts():
    out = io.BytesIO()
    members = {"m%d" % i: np.zeros(5 * 1024 * 1024, np.uint8) for i in range(5)}
    np.savez_compressed(out, **members)  # 5 x 5 MiB: over the default 24 MiB
    with pytest.raises(PayloadTooLarge):
        codecs.decode(out.getvalue(), codecs.NPZ)
    limits = codecs.Limits(max_decompressed_bytes=26 * 1024 * 1024)
    assert sorted(codecs.decode(out.getvalue(), codecs.NPZ, limits)) == sorted(members)


def test_npz_malformed_members_and_mixups():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("x.npy", b"not an array")
    assert "NPZ member 'x.npy'" in refused(out.getvalue(), codecs.NPZ)
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    assert "no arrays" in refused(empty.getvalue(), codecs.NPZ)
    npy = codecs.encode(np.arange(3), codecs.NPY)
    assert "NPY array, not an NPZ" in refused(npy, codecs.NPZ)
    assert "NPZ (zip) archive, not NPY" in refused(
        codecs.encode([np.arange(3)], codecs.NPZ), codecs.NPY
    )
    assert "not a valid NPZ" in refused(b"PK\x03\x04" + b"\0" * 100, codecs.NPZ)


def test_json_output_is_strict_non_finite_is_null():
    prediction = {
        "array": np.array([[1.5, np.nan], [np.inf, -np.inf]], np.float32),
        "scalar": np.float64("nan"),
        "python": [float("inf"), 2.0],
    }
    body = codecs.encode(prediction, codecs.JSON)
    assert body == b'{"array":[[1.5,null],[null,null]],"scalar":null,"python":[null,2.0]}'
    lines = codecs.encode(np.array([[np.nan, 1.0], [2.0, 3.0]]), codecs.JSONLINES)
    assert lines == b"[null,1.0]\n[2.0,3.0]\n"
    assert codecs.encode(np.array([1.0, 2.0]), codecs.JSON) == b"[1.0,2.0]"


def test_limits_follow_the_settings_and_configure_sets_the_default(monkeypatch):
    from eikit.settings import Settings

    assert codecs.Limits.from_settings(Settings()) == codecs.Limits()  # defaults agree
    settings = Settings(SAGEMAKER_MAX_PAYLOAD_IN_MB=1)
    assert codecs.Limits.from_settings(settings).max_decompressed_bytes == 4 * 1024 * 1024
    settings = Settings(EIKIT_MAX_DECOMPRESSED_MB=0.5)
    assert codecs.Limits.from_settings(settings).max_decompressed_bytes == 512 * 1024
    monkeypatch.setattr(codecs, "_limits", codecs.Limits())
    body = codecs.encode(np.zeros(1000, np.float64), codecs.NPY)
    codecs.configure(codecs.Limits(max_decompressed_bytes=100))
    with pytest.raises(PayloadTooLarge):
        codecs.decode(body, codecs.NPY)
