"""Fuzz every decoder: any body either decodes or is the client's error, and stays bounded.

Property: for arbitrary bytes and for valid bodies with mutated headers, shapes, dtypes,
sizes, nesting and cells, ``codecs.decode`` returns or raises ``BadRequest`` /
``PayloadTooLarge`` / ``UnsupportedMediaType``; nothing else escapes. Each decode runs
under tracemalloc and may not allocate more than its body can justify (a small multiple
of the body plus the decompressed limit), so a header that lies about its size fails the
test even when the decoder answers correctly afterwards. Valid arrays round-trip.

Deterministic (derandomized, no example database): the same cases in every CI run.
``EIKIT_FUZZ_SCALE=10`` runs ten times as many locally.
"""

from __future__ import annotations

import io
import json
import math
import struct
import tracemalloc
import zipfile
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eikit import codecs
from eikit.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from tests.fuzzing import fuzz

CLIENT_ERRORS = (BadRequest, PayloadTooLarge, UnsupportedMediaType)
LIMIT = 64 * 1024  # a small decompressed limit, so the 413 path is reached often
LIMITS = codecs.Limits(max_decompressed_bytes=LIMIT, max_json_depth=100)
REFUSED = object()  # what decode() below returns for a client error (JSON null is None)


def decode(body: bytes, content_type: str, limits: codecs.Limits = LIMITS) -> Any:
    """codecs.decode, or None for a client error; fails on anything else or on an
    allocation the body does not justify."""
    tracemalloc.start()  # only the decode is traced: tracing all of hypothesis is slow
    try:
        result = codecs.decode(body, content_type, limits)
    except CLIENT_ERRORS as exc:
        assert 400 <= exc.status < 500 and exc.message
        assert len(exc.message) < 700, "the message quotes too much of the body"
        result = REFUSED
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    allowed = 64 * len(body) + 2 * limits.max_decompressed_bytes + (1 << 20)
    assert peak <= allowed, "decoding %d bytes took %d bytes" % (len(body), peak)
    return result


# --- arbitrary bytes, every type ------------------------------------------------


@pytest.mark.parametrize("content_type", sorted(codecs.DECODERS) + ["image/png"])
@fuzz(400)
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes_are_decoded_or_refused(content_type: str, body: bytes) -> None:
    decode(body, content_type)


MAGICS = [b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"\x93NUMPY\x03\x00", b"PK\x03\x04", b"["]


@pytest.mark.parametrize("content_type", [codecs.NPY, codecs.NPZ, codecs.JSON])
@fuzz(300)
@given(magic=st.sampled_from(MAGICS), tail=st.binary(max_size=512))
def test_bytes_behind_a_valid_magic_are_decoded_or_refused(
    content_type: str, magic: bytes, tail: bytes
) -> None:
    decode(magic + tail, content_type)


# --- NPY ------------------------------------------------------------------------

DTYPES = st.sampled_from(
    ["<f4", ">f4", "<f8", "<f2", "|i1", "<i2", ">i4", "<i8", "|u1", "<u4", "|b1", "<c8"]
    + ["|S3", "<U2", "<M8[s]", "<m8[ms]"]
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
ARRAYS = DTYPES.flatmap(lambda dtype: hnp.arrays(np.dtype(dtype), SHAPES))


def npy_bytes(array: np.ndarray, version: Any = None) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, version=version, allow_pickle=False)
    return out.getvalue()


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.tobytes() == b.tobytes()  # bit-exact, NaN payloads included


@fuzz(500)
@given(
    array=ARRAYS,
    fortran=st.booleans(),
    version=st.sampled_from([None, (1, 0), (2, 0), (3, 0)]),
)
def test_npy_round_trips(array: np.ndarray, fortran: bool, version: Any) -> None:
    if fortran:
        array = np.asfortranarray(array)
    decoded = decode(npy_bytes(array, version), codecs.NPY)
    assert isinstance(decoded, np.ndarray) and same(decoded, array) and decoded.flags.writeable
    assert same(decode(codecs.encode(array, codecs.NPY), codecs.NPY), array)


HEADER_SHAPES = st.one_of(
    st.tuples(*[st.integers(0, 6)] * 2),
    st.lists(st.integers(-3, 2**70), max_size=5).map(tuple),
    st.lists(st.integers(0, 10**40), min_size=1, max_size=40).map(tuple),
    st.sampled_from(["(3,)", "[3]", "(True,)", "(3.0,)", "'3'", "(" * 60 + ")" * 60, "{}"]),
)
HEADER_DESCRS = st.one_of(
    DTYPES.map(repr),
    st.sampled_from(
        [
            "'|O'",
            "'<V0'",
            "'|S0'",
            "\"('<f4', (3,))\"",
            "[('a', '<f4'), ('b', '|O')]",
            "[('a', '<f4'), ('b', '<i2', (2,))]",
            "[('a', [('b', '<f8')])]",
            "'not a dtype'",
            "3",
            "[('',)]",
            "[" * 50 + "]" * 50,
        ]
    ),
)


def npy_with_header(header: str, data: bytes, version: int = 1) -> bytes:
    raw = header.encode("utf8" if version == 3 else "latin1", "replace")
    length = struct.pack("<H" if version == 1 else "<I", len(raw))
    return b"\x93NUMPY" + bytes([version, 0]) + length + raw + data


@fuzz(1500)
@given(
    shape=HEADER_SHAPES,
    descr=HEADER_DESCRS,
    fortran=st.sampled_from(["False", "True", "0", "None"]),
    extra=st.sampled_from(["", ", 'extra': 1", "}  {"]),
    version=st.sampled_from([1, 2, 3]),
    data=st.binary(max_size=256),
)
def test_npy_headers_that_lie_are_refused_before_allocating(
    shape: Any, descr: str, fortran: str, extra: str, version: int, data: bytes
) -> None:
    header = "{'descr': %s, 'fortran_order': %s, 'shape': %s%s}\n" % (
        descr,
        fortran,
        shape if isinstance(shape, str) else repr(tuple(shape)),
        extra,
    )
    body = npy_with_header(header, data, version)
    decoded = decode(body, codecs.NPY)
    if decoded is not REFUSED:  # only an array that is exactly the bytes sent
        assert decoded.nbytes == len(data) <= LIMIT


@fuzz(800)
@given(
    array=ARRAYS,
    cut=st.integers(0, 400),
    position=st.integers(0, 200),
    value=st.integers(0, 255),
    mode=st.sampled_from(["truncate", "flip", "append", "length"]),
)
def test_mutated_npy_bodies_are_decoded_or_refused(
    array: np.ndarray, cut: int, position: int, value: int, mode: str
) -> None:
    body = bytearray(npy_bytes(array))
    if mode == "truncate":
        del body[min(cut, len(body)) :]
    elif mode == "flip":
        body[position % len(body)] = value
    elif mode == "append":
        body += bytes([value]) * (cut % 16 + 1)
    else:  # the header length field
        body[8] = value
    decoded = decode(bytes(body), codecs.NPY)
    if decoded is not REFUSED:
        assert decoded.nbytes <= len(body)


# --- NPZ ------------------------------------------------------------------------

# np.savez takes the arrays as keyword arguments: its own parameters cannot name one.
SAVEZ_PARAMETERS = ("file", "allow_pickle")
NAMES = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=8).filter(
    lambda name: name not in SAVEZ_PARAMETERS
)
ARCHIVES = st.dictionaries(NAMES, ARRAYS, min_size=1, max_size=3)


def npz_bytes(arrays: Any, compressed: bool) -> bytes:
    out = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(out, **arrays)
    return out.getvalue()


@fuzz(300)
@given(arrays=ARCHIVES, compressed=st.booleans())
def test_npz_round_trips(arrays: Any, compressed: bool) -> None:
    decoded = decode(npz_bytes(arrays, compressed), codecs.NPZ)
    assert decoded is not REFUSED and sorted(decoded) == sorted(arrays)
    assert all(same(decoded[name], array) for name, array in arrays.items())


def patch_sizes(body: bytearray, size: int) -> None:
    """Make every zip entry declare ``size`` uncompressed bytes (central + local headers)."""
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        start = body.find(signature)
        while start != -1:
            if start + offset + 4 <= len(body):
                body[start + offset : start + offset + 4] = struct.pack("<I", size)
            start = body.find(signature, start + 4)


@fuzz(1000)
@given(
    arrays=ARCHIVES,
    compressed=st.booleans(),
    mode=st.sampled_from(["flip", "truncate", "sizes", "sizes", "bomb"]),
    position=st.integers(0, 10**6),
    value=st.integers(0, 2**32 - 1),
)
def test_mutated_npz_bodies_are_decoded_or_refused(
    arrays: Any, compressed: bool, mode: str, position: int, value: int
) -> None:
    if mode == "bomb":
        arrays = dict(arrays, bomb=np.zeros(value % (4 * LIMIT), np.uint8))
        compressed = True
    body = bytearray(npz_bytes(arrays, compressed))
    if mode == "flip":
        body[position % len(body)] = value & 0xFF
    elif mode == "truncate":
        del body[position % len(body) :]
    elif mode == "sizes":
        patch_sizes(body, value)
    decoded = decode(bytes(body), codecs.NPZ)
    if decoded is not REFUSED:
        assert sum(array.nbytes for array in decoded.values()) <= LIMIT


def test_npz_that_inflates_past_its_declared_size_is_cut_at_it() -> None:
    """A zip entry that declares 100 bytes but inflates to 16 MiB: read 100, then refused."""
    member = npy_bytes(np.zeros(16 * 1024 * 1024, np.uint8))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", member)
    body = bytearray(out.getvalue())
    patch_sizes(body, 100)
    assert decode(bytes(body), codecs.NPZ) is REFUSED  # decode() also checks the allocation


def test_npz_bzip2_and_lzma_members_are_refused() -> None:
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", method) as archive:
            archive.writestr("x.npy", npy_bytes(np.arange(3)))
        with pytest.raises(BadRequest, match="compression method"):
            codecs.decode(out.getvalue(), codecs.NPZ)


# --- JSON and JSON lines ---------------------------------------------------------

TEXT = st.text(st.sampled_from('ab[]{}"\\,:\n\r\t \u00e9\u2028'), max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def wrap(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


@fuzz(1200)
@given(value=VALUES, levels=st.integers(0, 130), ascii_only=st.booleans())
def test_json_decodes_iff_not_too_deep(value: Any, levels: int, ascii_only: bool) -> None:
    value = wrap(value, levels)
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert codecs.json_depth(body) == depth(value)  # brackets in strings never counted
    decoded = decode(body, codecs.JSON)
    assert (decoded is not REFUSED) == (depth(value) <= LIMITS.max_json_depth)
    lines = b"\n".join(json.dumps(v).encode() for v in (value, [1, 2], {"k": value}))
    assert (decode(lines, codecs.JSONLINES) is not REFUSED) == (depth(value) < 100)


@fuzz(800)
@given(value=VALUES, cut=st.integers(0, 200), insert=st.binary(min_size=1, max_size=3))
def test_mutated_json_is_decoded_or_refused(value: Any, cut: int, insert: bytes) -> None:
    body = json.dumps(value).encode()
    cut = min(cut, len(body))
    for mutated in (body[:cut], body[:cut] + insert + body[cut:], b"[" * 2000 + body):
        decode(mutated, codecs.JSON)
        decode(mutated.replace(b",", b"\n"), codecs.JSONLINES)


JSONISH = bytes(b'[]{}"\\a,'[i % 8] for i in range(256))


@fuzz(400)
@given(body=st.binary(max_size=3000).map(lambda b: b.translate(JSONISH)))
def test_json_depth_never_fails_on_bracket_soup(body: bytes) -> None:
    assert codecs.json_depth(body) >= 0
    decode(body, codecs.JSON)


# --- CSV ------------------------------------------------------------------------

FLOATS32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@fuzz(500)
@given(matrix=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2), elements=FLOATS32))
def test_csv_round_trips(matrix: np.ndarray) -> None:
    decoded = decode(codecs.encode(matrix, codecs.CSV), codecs.CSV)
    # one row comes back 1-D, as numpy.genfromtxt (AWS's CSV decoder) returns it
    expected = matrix if matrix.shape[0] > 1 else matrix[0]
    assert decoded is not REFUSED and decoded.shape == expected.shape
    assert np.array_equal(decoded, expected, equal_nan=True)


CELLS = st.one_of(
    st.floats(allow_nan=True).map(repr),
    st.integers().map(str),
    st.text(st.sampled_from('0123456789.e-+ ",\r\n\x00abc\ufeff'), max_size=8),
)


@fuzz(800)
@given(
    rows=st.lists(st.lists(CELLS, max_size=5), max_size=6),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_csv_with_random_cells_is_decoded_or_refused(rows: Any, eol: str) -> None:
    body = eol.join(",".join(row) for row in rows).encode()
    decoded = decode(body, codecs.CSV)
    if decoded is not REFUSED:
        assert decoded.dtype == np.float32 and decoded.ndim in (1, 2) and decoded.size > 0


# --- strict JSON out ------------------------------------------------------------


def strict_loads(text: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError("non-strict JSON constant %s" % constant)

    return json.loads(text, parse_constant=refuse)


def finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    return value


@fuzz(600)
@given(
    array=hnp.arrays(
        st.sampled_from([np.float16, np.float32, np.float64]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
        elements=st.floats(width=16, allow_nan=True, allow_infinity=True),
    ),
    value=VALUES,
)
def test_json_out_is_strict_and_non_finite_is_null(array: np.ndarray, value: Any) -> None:
    expected = finite_or_none(array.tolist())
    assert strict_loads(codecs.encode(array, codecs.JSON)) == expected
    lines = codecs.encode(array, codecs.JSONLINES).splitlines()
    rows = expected if isinstance(expected, list) else [expected]
    assert [strict_loads(line) for line in lines] == rows
    mixed = {"array": array, "value": value, "scalar": array.dtype.type("nan")}
    assert strict_loads(codecs.encode(mixed, codecs.JSON)) == finite_or_none(
        {"array": array.tolist(), "value": value, "scalar": float("nan")}
    )
