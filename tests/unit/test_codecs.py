import io

import numpy as np
import pytest

from eikit import codecs
from eikit.errors import BadRequest, NotAcceptable, UnsupportedMediaType


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
