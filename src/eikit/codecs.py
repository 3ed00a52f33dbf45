"""Content types: decode request bodies, encode predictions, negotiate Accept.

Decoding never unpickles (``allow_pickle=False``). A body that does not parse as its
type is a ``BadRequest`` (400); an unknown type is ``UnsupportedMediaType`` (415); an
Accept header naming nothing we can produce is ``NotAcceptable`` (406).
"""

from __future__ import annotations

import csv
import functools
import io
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from eikit.errors import BadRequest, NotAcceptable, UnsupportedMediaType

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


# --- decoding ---------------------------------------------------------------


def _json_to_array(value: Any) -> Any:
    """JSON arrays of numbers become float32 ndarrays (as AWS's toolkits do for text
    formats); anything else is handed on as parsed. NPY/NPZ keep their dtype."""
    if isinstance(value, list):
        try:
            array = np.asarray(value)
        except ValueError:
            return value  # ragged: let the hooks decide
        if array.dtype.kind in "biuf":
            return array.astype(np.float32)
    return value


def decode_json(body: bytes) -> Any:
    try:
        return _json_to_array(json.loads(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("body is not valid JSON: %s" % exc) from None


def decode_jsonlines(body: bytes) -> Any:
    try:
        rows = [json.loads(line) for line in body.splitlines() if line.strip()]
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("body is not valid JSON lines: %s" % exc) from None
    return _json_to_array(rows)


def decode_csv(body: bytes) -> np.ndarray:
    try:
        text = body.decode("utf-8")
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        array = np.array([[float(cell) for cell in row] for row in rows], dtype=np.float32)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("body is not numeric CSV: %s" % exc) from None
    if not rows:
        raise BadRequest("CSV body is empty")
    return array


def decode_npy(body: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest("body is not a valid NPY array: %s" % exc) from None
    if not isinstance(array, np.ndarray):
        raise BadRequest("body is an NPZ archive, not NPY: send it as %s" % NPZ)
    return array


def decode_npz(body: bytes) -> Dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("not an NPZ archive")
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest("body is not a valid NPZ archive: %s" % exc) from None


DECODERS: Dict[str, Callable[[bytes], Any]] = {
    JSON: decode_json,
    JSONLINES: decode_jsonlines,
    CSV: decode_csv,
    NPY: decode_npy,
    NPZ: decode_npz,
    OCTET: bytes,
}


def decode(body: bytes, content_type: str) -> Any:
    decoder = DECODERS.get(media_type(content_type))
    if decoder is None:
        raise UnsupportedMediaType(
            "unsupported Content-Type %r; supported: %s" % (content_type, ", ".join(DECODERS))
        )
    return decoder(body)


# --- encoding ---------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Arrays, numpy scalars and array-likes (tensors) to JSON-ready Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        raise TypeError("bytes cannot be encoded as JSON; ask for %s" % OCTET)
    if hasattr(value, "__array__") and not isinstance(value, (str, int, float, bool)):
        return np.asarray(value).tolist()
    return value


def encode_json(prediction: Any) -> bytes:
    return json.dumps(_plain(prediction), separators=(",", ":")).encode()


def encode_jsonlines(prediction: Any) -> bytes:
    rows = _plain(prediction)
    if not isinstance(rows, list):
        rows = [rows]
    return b"".join(json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows)


def encode_csv(prediction: Any) -> bytes:
    array = np.asarray(_plain(prediction))
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(-1, 1) if array.size > 1 else array.reshape(1, -1)
    elif array.ndim > 2:
        raise TypeError("only 1-D or 2-D predictions can be encoded as CSV")
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
