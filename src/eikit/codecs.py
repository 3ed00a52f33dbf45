"""Content types: decode request bodies, encode predictions, negotiate Accept.

Decoding never unpickles. A body that does not parse as its type is a ``BadRequest``
(400) whose message says what is wrong and where, quoting at most ~100 characters of
the body; a body that would decode to more array data than ``Limits`` allow is a
``PayloadTooLarge`` (413); an unknown type is ``UnsupportedMediaType`` (415); an Accept
header naming nothing we can produce is ``NotAcceptable`` (406). Nothing else escapes a
decoder (tests/unit/test_codecs_fuzz.py holds them to that).

JSON responses are strict JSON: NaN and +-Infinity are written as ``null``.
"""

from __future__ import annotations

import array as pyarray
import csv
import functools
import io
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from eikit import jsoncodec
from eikit.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from eikit.npyfile import load_npy, load_npz, quote

if TYPE_CHECKING:
    from eikit.settings import Settings

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
NPY = "application/x-npy"
NPZ = "application/x-npz"
OCTET = "application/octet-stream"

# Other names clients send for the same formats (AWS SDK serializers among them).
ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/json-lines": JSONLINES,
    "application/npy": NPY,
    "application/x-numpy": NPY,
    "application/npz": NPZ,
    "text/json": JSON,
}


@functools.lru_cache(maxsize=256)
def media_type(header: Optional[str]) -> str:
    """``'Application/JSON; charset=utf-8'`` -> ``'application/json'``."""
    if not header:
        return ""
    base = header.split(";", 1)[0].strip().lower()
    return ALIASES.get(base, base)


# --- limits -------------------------------------------------------------------

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one request body may decode to. The defaults match the default settings."""

    # NPY/NPZ array data in total (an NPZ's members inflated); EIKIT_MAX_DECOMPRESSED_MB.
    max_decompressed_bytes: int = 4 * 6 * MIB
    # JSON / JSON lines nesting: deeper bodies are refused before they are parsed.
    max_json_depth: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(max_decompressed_bytes=settings.max_decompressed_bytes)


_limits = Limits()


def configure(limits: Limits) -> None:
    """Set the limits ``decode`` uses when it is given none: once per worker process."""
    global _limits
    _limits = limits


# --- decoding -----------------------------------------------------------------


def _numbers(value: List[Any]) -> Optional[np.ndarray]:
    """A JSON array of numbers as an ndarray (booleans, integers or float64); None when it
    is ragged or holds anything else."""
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):
        return None  # ragged: let the hooks decide
    return array if array.dtype.kind in "biuf" else None


def _float32(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f":
        with np.errstate(over="ignore"):  # beyond float32's range is inf, as in numpy
            return array.astype(np.float32)
    return array.astype(np.float32)


def _json_to_array(value: Any) -> Any:
    """JSON arrays of numbers become float32 ndarrays (as AWS's toolkits do for text
    formats); anything else is handed on as parsed. NPY/NPZ keep their dtype."""
    if isinstance(value, list):
        array = _numbers(value)
        if array is not None:
            return _float32(array)
    return value


def _parse_json(body: bytes) -> Any:
    """``json.loads(body)`` through orjson, with numeric arrays as float32 ndarrays.
    An array answers orjson's one doubt (an integer beyond 64 bits read as a float) with
    one vectorised comparison rather than a walk over its items."""
    value, unsure = jsoncodec.loads_unsure(body)
    if not unsure:
        return _json_to_array(value)
    if isinstance(value, list):
        array = _numbers(value)
        if array is None:
            huge = jsoncodec.has_huge(value)
        else:
            huge = array.dtype.kind == "f" and jsoncodec.array_has_huge(array)
        if not huge:
            return value if array is None else _float32(array)
    elif not jsoncodec.has_huge(value):
        return value
    return _json_to_array(json.loads(body))


def json_depth(body: bytes) -> int:
    """The deepest ``[``/``{`` nesting in ``body``, brackets inside strings not counted.

    Vectorised (no Python loop over the body, no recursion), so it runs before parsing:
    exact for valid JSON and JSON lines; for invalid bodies any answer will do, since
    the parser refuses them anyway.
    """
    codes = np.frombuffer(body, dtype=np.uint8)
    folded = codes | 32  # '[' (91) and '{' (123) both fold to 123; ']' and '}' to 125
    opening = folded == 123
    at = np.flatnonzero(opening | (folded == 125))
    if at.size == 0:
        return 0
    quotes = codes == 34
    slashes = np.flatnonzero(codes == 92)
    if slashes.size:
        # A quote after an odd run of backslashes is escaped: not a string boundary.
        breaks = np.flatnonzero(np.diff(slashes) != 1)
        ends = np.append(slashes[breaks], slashes[-1])
        starts = np.insert(slashes[breaks + 1], 0, slashes[0])
        escaped = ends[(ends - starts) % 2 == 0] + 1
        quotes[escaped[escaped < codes.size]] = False
    boundaries = np.flatnonzero(quotes)
    if boundaries.size:
        at = at[np.searchsorted(boundaries, at) % 2 == 0]  # an even count before: outside
        if at.size == 0:
            return 0
    return max(0, int(np.cumsum(np.where(opening[at], 1, -1)).max()))


def _check_depth(body: bytes, limit: int, what: str) -> None:
    # Fewer opening brackets than the limit cannot nest deeper: no scan for most bodies.
    if body.count(b"[") + body.count(b"{") > limit and json_depth(body) > limit:
        raise BadRequest("%s nests deeper than %d levels" % (what, limit))


def decode_json(body: bytes, limits: Optional[Limits] = None) -> Any:
    """JSON; NaN, Infinity and -Infinity are read as floats, as Python and AWS's toolkits do."""
    _check_depth(body, (limits or _limits).max_json_depth, "JSON body")
    try:
        return _parse_json(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest("body is not valid JSON: %s" % quote(str(exc), 200)) from None


def decode_jsonlines(body: bytes, limits: Optional[Limits] = None) -> Any:
    """One JSON value per non-blank line; an empty body is a BadRequest."""
    _check_depth(body, (limits or _limits).max_json_depth, "JSON lines body")
    rows = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(jsoncodec.loads(line))
        except (ValueError, RecursionError) as exc:
            raise BadRequest(
                "JSON lines body: line %d is not valid JSON: %s" % (number, quote(str(exc), 200))
            ) from None
    if not rows:
        raise BadRequest("JSON lines body is empty")
    return _json_to_array(rows)


def _bad_cell(row: List[str], line: int) -> BadRequest:
    for column, cell in enumerate(row, 1):
        try:
            float(cell)
        except ValueError:
            return BadRequest(
                "CSV line %d, column %d is not a number: %s" % (line, column, quote(cell))
            )
    return BadRequest("CSV line %d is not numeric" % line)  # pragma: no cover


def decode_csv(body: bytes, limits: Optional[Limits] = None) -> np.ndarray:
    """Numeric CSV as a float32 array: rows x fields, except that a single row is 1-D, as
    ``numpy.genfromtxt`` (what AWS's toolkit decodes CSV with) returns it. Unlike genfromtxt,
    a single column stays 2-D: squeezed, a one-feature model could not take it. Rows end
    with \\n, \\r\\n or \\r; blank lines are skipped; every row must have as many fields
    as the first."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest("CSV body is not UTF-8: %s" % exc) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    values = pyarray.array("d")  # 8 bytes a value, not a Python object per cell
    width = rows = 0
    try:
        for row in reader:
            if not row:
                continue
            if not rows:
                width = len(row)
            elif len(row) != width:
                raise BadRequest(
                    "CSV line %d has %d fields; the first row has %d"
                    % (reader.line_num, len(row), width)
                )
            try:
                values.extend(map(float, row))
            except ValueError:
                raise _bad_cell(row, reader.line_num) from None
            rows += 1
    except csv.Error as exc:  # a field over csv.field_size_limit(), a stray quote...
        raise BadRequest("CSV line %d does not parse: %s" % (reader.line_num, exc)) from None
    if not rows:
        raise BadRequest("CSV body is empty")
    with np.errstate(over="ignore"):  # beyond float32's range is inf, as in numpy
        decoded = np.frombuffer(values, dtype=np.float64).astype(np.float32)
    return decoded if rows == 1 else decoded.reshape(rows, width)


def decode_npy(body: bytes, limits: Optional[Limits] = None) -> np.ndarray:
    """An ndarray with its dtype; object arrays are refused, sizes checked first."""
    return load_npy(body, (limits or _limits).max_decompressed_bytes)


def decode_npz(body: bytes, limits: Optional[Limits] = None) -> Dict[str, np.ndarray]:
    """Each member as an ndarray; inflated sizes are checked against the limit first."""
    return load_npz(body, (limits or _limits).max_decompressed_bytes)


def decode_octet(body: bytes, limits: Optional[Limits] = None) -> bytes:
    return bytes(body)


DECODERS: Dict[str, Callable[[bytes, Optional[Limits]], Any]] = {
    JSON: decode_json,
    JSONLINES: decode_jsonlines,
    CSV: decode_csv,
    NPY: decode_npy,
    NPZ: decode_npz,
    OCTET: decode_octet,
}


def decode(body: bytes, content_type: str, limits: Optional[Limits] = None) -> Any:
    """``body`` as its ``content_type`` says; ``limits`` default to what ``configure`` set."""
    decoder = DECODERS.get(media_type(content_type))
    if decoder is None:
        raise UnsupportedMediaType(
            "unsupported Content-Type %s; supported: %s"
            % (quote(content_type), ", ".join(DECODERS))
        )
    return decoder(body, limits)


# --- encoding ---------------------------------------------------------------


def _plain(value: Any, strict: bool = False) -> Any:
    """Arrays, numpy scalars and array-likes (tensors) to JSON-ready Python values;
    ``strict``: non-finite floats become None."""
    if isinstance(value, np.ndarray):
        return _array_plain(value, strict)
    if isinstance(value, np.generic):
        return _plain(value.item(), strict) if strict else value.item()
    if isinstance(value, float):
        return None if strict and not math.isfinite(value) else value
    if isinstance(value, dict):
        return {str(k): _plain(v, strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, strict) for v in value]
    if isinstance(value, (bytes, bytearray)):
        raise NotAcceptable("the prediction is bytes, which JSON cannot hold; ask for %s" % OCTET)
    if hasattr(value, "__array__") and not isinstance(value, (str, int, float, bool)):
        return _array_plain(np.asarray(value), strict)
    return value


def _array_plain(array: np.ndarray, strict: bool) -> Any:
    if array.dtype.hasobject or array.dtype.names is not None:
        return _plain(array.tolist(), strict)  # objects, records: their items may need it
    if strict and array.dtype.kind in "fc":
        bad = ~np.isfinite(array)
        if bad.any():
            array = array.astype(object)
            array[bad] = None
    return array.tolist()


def _json_text(prediction: Any, dump: Callable[[Any], str]) -> str:
    """Strict JSON for ``prediction``: NaN and +-Infinity are written as null.

    The first try costs nothing extra for finite data; only an answer holding a
    non-finite float (json raises ValueError on it) is converted a second time.
    """
    try:
        return dump(_plain(prediction))
    except ValueError:
        return dump(_plain(prediction, strict=True))


_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # one, not one per call
_dumps = _COMPACT.encode


def _fast_json(prediction: Any) -> Optional[bytes]:
    """The answer through orjson (see eikit.jsoncodec); None to write it with json."""
    if isinstance(prediction, np.ndarray):
        fast = jsoncodec.dumps_array(prediction)
        if fast is not None:
            return fast
    return jsoncodec.dumps(_plain(prediction)) if jsoncodec.available() else None


def encode_json(prediction: Any) -> bytes:
    fast = _fast_json(prediction)
    return fast if fast is not None else _json_text(prediction, _dumps).encode()


def _dump_lines(rows: Any) -> str:
    if not isinstance(rows, list):
        rows = [rows]
    return "".join(_dumps(row) + "\n" for row in rows)


def encode_jsonlines(prediction: Any) -> bytes:
    if isinstance(prediction, (list, tuple)) or (
        isinstance(prediction, np.ndarray) and prediction.ndim > 0
    ):
        rows = prediction
    else:
        plain = _plain(prediction)
        rows = plain if isinstance(plain, list) else [plain]
    lines = [_fast_json(row) for row in rows]
    if all(line is not None for line in lines):
        return b"".join(line + b"\n" for line in lines)  # type: ignore[operator]
    return _json_text(prediction, _dump_lines).encode()


def encode_csv(prediction: Any) -> bytes:
    array = np.asarray(_plain(prediction))
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(-1, 1) if array.size > 1 else array.reshape(1, -1)
    elif array.ndim > 2:
        # What the client asked for cannot hold this answer: its request, not a server fault.
        raise NotAcceptable(
            "the prediction has %d dimensions (shape %s); text/csv holds 1 or 2: ask for "
            "application/json or application/x-npy" % (array.ndim, list(array.shape))
        )
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(array.tolist())
    return out.getvalue().encode()


def encode_npy(prediction: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(prediction), allow_pickle=False)
    return out.getvalue()


def encode_npz(prediction: Any) -> bytes:
    out = io.BytesIO()
    if isinstance(prediction, dict):
        np.savez(out, **{str(k): np.asarray(v) for k, v in prediction.items()})
    elif isinstance(prediction, (list, tuple)):
        np.savez(out, *[np.asarray(v) for v in prediction])
    else:
        np.savez(out, np.asarray(prediction))
    return out.getvalue()


def encode_octet(prediction: Any) -> bytes:
    if isinstance(prediction, (bytes, bytearray, memoryview)):
        return bytes(prediction)
    return np.ascontiguousarray(np.asarray(prediction)).tobytes()


ENCODERS: Dict[str, Callable[[Any], bytes]] = {
    JSON: encode_json,
    JSONLINES: encode_jsonlines,
    CSV: encode_csv,
    NPY: encode_npy,
    NPZ: encode_npz,
    OCTET: encode_octet,
}


@functools.lru_cache(maxsize=256)
def parse_accept(accept: Optional[str]) -> Tuple[str, ...]:
    """The media types in an Accept header, in the order given (q-values respected)."""
    if not accept:
        return ()
    ranked: List[Tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        pieces = part.split(";")
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = media_type(pieces[0])
        if kind and quality > 0:
            ranked.append((-quality, position, kind))
    return tuple(kind for _, _, kind in sorted(ranked))


def is_default_accept(accept: Optional[str]) -> bool:
    types = parse_accept(accept)
    return not types or types[0] == "*/*"


def negotiate(accept: Optional[str], default: str) -> str:
    """The first type in ``accept`` we can encode; missing or ``*/*`` means ``default``."""
    types = parse_accept(accept)
    if not types:
        return media_type(default)
    for kind in types:
        if kind == "*/*":
            return media_type(default)
        if kind in ENCODERS:
            return kind
        if kind.endswith("/*"):
            major = kind[:-1]
            for known in ENCODERS:
                if known.startswith(major):
                    return known
    raise NotAcceptable(
        "none of the types in Accept %r is supported; supported: %s" % (accept, ", ".join(ENCODERS))
    )


def encode(prediction: Any, content_type: str) -> bytes:
    encoder = ENCODERS.get(media_type(content_type))
    if encoder is None:
        raise NotAcceptable("cannot encode as %r" % content_type)
    return encoder(prediction)
