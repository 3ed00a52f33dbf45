"""orjson gives the values Python's json gives, in both directions, and eikit works without it.

Each property compares eikit with orjson against eikit with orjson hidden (``json`` only,
what eikit did before orjson): same parsed values, same decoded arrays and dtypes, same
answers once parsed, NaN and Infinity handled as before.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eikit import codecs, jsoncodec

orjson = pytest.importorskip("orjson")


@pytest.fixture
def without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsoncodec, "orjson", None)


def same(a: Any, b: Any) -> bool:
    """Equal values and types, NaN equal to NaN, arrays by dtype, shape and bits."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


numbers = st.one_of(
    st.integers(),  # beyond 64 bits too
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text())
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=400, derandomize=True, database=None)
@given(values, st.sampled_from([None, 0, 2]))
def test_loads_gives_what_json_gives(value: Any, indent: Any) -> None:
    text = json.dumps(value, indent=indent).encode()
    assert same(jsoncodec.loads(text), json.loads(text))


@settings(max_examples=300, derandomize=True, database=None)
@given(
    st.lists(
        st.one_of(
            st.from_regex(
                r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
            ),
            st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400"]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_number_spellings_parse_to_the_same_values(spellings: Any) -> None:
    body = ("[" + ",".join(spellings) + "]").encode()
    assert same(jsoncodec.loads(body), json.loads(body))


def test_integers_beyond_64_bits_stay_exact() -> None:
    big = 123456789012345678901234567890
    for body in (b"%d" % big, b"[1, %d]" % big, b'{"a": [%d]}' % big, b"[[-%d, 2]]" % big):
        assert same(jsoncodec.loads(body), json.loads(body))
    # bodies too large to be searched first: checked after parsing
    padding = [0.5] * (jsoncodec.SEARCH_BELOW // 4)
    for value in ([big] + padding, {"a": padding, "b": -big}, [padding, [big] * len(padding)]):
        body = json.dumps(value).encode()
        assert len(body) > jsoncodec.SEARCH_BELOW
        assert same(jsoncodec.loads(body), json.loads(body))
        assert same(codecs.decode(body, codecs.JSON), json.loads(body))
    # as a request: not an array of machine numbers, handed on as parsed (as before)
    assert codecs.decode(b"[1, %d]" % big, codecs.JSON) == [1, big]
    assert codecs.decode(b"[1e30, 2]", codecs.JSON).dtype == np.float32  # a float stays one


@pytest.mark.parametrize(
    "body",
    [
        b"[NaN, Infinity, -Infinity]",
        b'"\\ud800"',
        b"\xef\xbb\xbf[1, 2]",  # a UTF-8 BOM
        "[1, 2]".encode("utf-16"),
        b'{"a": 1, "a": 2}',
    ],
)
def test_what_orjson_refuses_is_read_as_json_reads_it(body: bytes) -> None:
    assert same(jsoncodec.loads(body), json.loads(body))


@settings(max_examples=300, derandomize=True, database=None)
@given(values)
def test_decoded_requests_are_the_same_with_and_without_orjson(value: Any) -> None:
    body = json.dumps(value).encode()
    fast = codecs.decode(body, codecs.JSON)
    real = jsoncodec.orjson
    jsoncodec.orjson = None
    try:
        slow = codecs.decode(body, codecs.JSON)
        slow_lines = codecs.decode(body + b"\n" + body, codecs.JSONLINES)
    finally:
        jsoncodec.orjson = real
    assert same(fast, slow)
    assert same(codecs.decode(body + b"\n" + body, codecs.JSONLINES), slow_lines)


arrays = hnp.arrays(
    st.sampled_from(
        [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint64, np.bool_, ">f4"]
    ),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)


def _without_orjson(encode: Any, prediction: Any) -> bytes:
    real = jsoncodec.orjson
    jsoncodec.orjson = None
    try:
        return encode(prediction)  # type: ignore[no-any-return]
    finally:
        jsoncodec.orjson = real


@settings(max_examples=300, derandomize=True, database=None)
@given(arrays, st.booleans())
def test_encoded_answers_parse_to_the_same_values(array: np.ndarray, transpose: bool) -> None:
    prediction = array.T if transpose else array
    for encode in (codecs.encode_json, codecs.encode_jsonlines):
        fast = encode(prediction)
        slow = _without_orjson(encode, prediction)
        parse = (
            (lambda b: [json.loads(x) for x in b.splitlines()])
            if encode is codecs.encode_jsonlines
            else json.loads
        )
        assert same(parse(fast), parse(slow)), (fast, slow)


@settings(max_examples=300, derandomize=True, database=None)
@given(values)
def test_encoded_plain_values_parse_to_the_same_values(value: Any) -> None:
    try:
        slow = _without_orjson(codecs.encode_json, value)
    except (TypeError, ValueError):
        return
    assert same(json.loads(codecs.encode_json(value)), json.loads(slow))


def test_non_finite_answers_are_null_with_and_without_orjson() -> None:
    prediction = np.array([[1.5, np.nan, np.inf, -np.inf]], dtype=np.float32)
    assert json.loads(codecs.encode_json(prediction)) == [[1.5, None, None, None]]
    assert json.loads(_without_orjson(codecs.encode_json, prediction)) == [[1.5, None, None, None]]
    assert json.loads(codecs.encode_json({"a": [float("nan")]})) == {"a": [None]}


def test_float32_answers_are_written_as_the_doubles_tolist_gives() -> None:
    prediction = np.array([0.1, 1 / 3, 3e-8], dtype=np.float32)
    assert json.loads(codecs.encode_json(prediction)) == prediction.tolist()


def test_what_orjson_will_not_write_is_written_by_json() -> None:
    class Text(str):
        pass

    big = [2**70, Text("x")]
    assert jsoncodec.dumps(big) is None
    assert json.loads(codecs.encode_json(big)) == [2**70, "x"]


def test_everything_works_without_orjson(without_orjson: None) -> None:
    assert not jsoncodec.available()
    assert codecs.decode(b"[[1, 2.5]]", codecs.JSON).tolist() == [[1.0, 2.5]]
    assert codecs.decode(b"[NaN]", codecs.JSON).dtype == np.float32
    assert json.loads(codecs.encode_json(np.ones((1, 2), np.float32))) == [[1.0, 1.0]]
    assert jsoncodec.dumps([1]) is None and jsoncodec.dumps_array(np.ones(2)) is None


@settings(max_examples=400, derandomize=True, database=None)
@given(values, st.sampled_from([None, 0, 2]), st.booleans())
def test_try_loads_reads_what_json_reads_or_leaves_it_to_json(
    value: Any, indent: Any, as_text: bool
) -> None:
    text = json.dumps(value, indent=indent)
    read, parsed = jsoncodec.try_loads(text if as_text else text.encode())
    if read:
        assert same(parsed, json.loads(text))
    else:  # only for what orjson refuses, or a run of 19 digits (an integer beyond 64 bits?)
        assert (
            "NaN" in text
            or "Infinity" in text
            or "\\ud" in text.lower()
            or any(_long_digits(n) for n in _numbers(value))
        ), text


def _long_digits(value: Any) -> bool:
    return isinstance(value, (int, str)) and re.search(r"[0-9]{19}", str(value)) is not None


def _numbers(value: Any) -> Any:
    if isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    else:
        yield value


@pytest.mark.parametrize(
    "data",
    [b"\xef\xbb\xbf{}", b'{"a": NaN}', b"[18446744073709551616]", '"\ud800"', b"{", b"\xff"],
)
def test_try_loads_leaves_what_orjson_refuses_or_misreads_to_json(data: Any) -> None:
    assert jsoncodec.try_loads(data) == (False, None)


def test_try_loads_without_orjson_leaves_everything_to_json(without_orjson: None) -> None:
    assert jsoncodec.try_loads(b"{}") == (False, None)
