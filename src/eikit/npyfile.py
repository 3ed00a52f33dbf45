"""Read NPY arrays and NPZ archives from untrusted request bodies.

numpy's loaders trust what a file says about itself: a 16-byte body whose header declares
a 3.6 TiB shape is allocated before the short read is noticed, a header that does not
parse escapes as ``TokenError`` or ``SyntaxError``, and an NPZ member is inflated to
whatever size it expands to. Here the header is parsed by hand, the declared size
(``prod(shape) * itemsize``, in Python integers) is compared with the bytes present and
with the limit before any array exists, and NPZ members are read only after the sizes
their zip entries declare add up to no more than the limit, and never past those sizes.

Every failure is a ``BadRequest`` (400) or, for the limit, a ``PayloadTooLarge`` (413);
a message quotes at most ~100 characters of the request.
"""

from __future__ import annotations

import ast
import io
import struct
import zipfile
from typing import Any, Dict, NamedTuple, Tuple

import numpy as np

from eikit.errors import BadRequest, EikitError, PayloadTooLarge

MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
MAX_HEADER_CHARS = 10000  # numpy's own ceiling (numpy.lib.format._MAX_HEADER_SIZE)
MAX_HEADER_DEPTH = 16  # brackets in the header's dict: structured dtypes nest a little
MAX_DIMS = 32  # numpy 1.x's NPY_MAXDIMS
INTP_MAX = int(np.iinfo(np.intp).max)
# numpy writes stored (np.savez) or deflated (np.savez_compressed) members. zipfile
# inflates bzip2 and lzma a whole input chunk at a time, unbounded: refused.
COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# (length field, encoding) per format version, as numpy.lib.format defines them.
VERSIONS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}
HEADER_KEYS = {"descr", "fortran_order", "shape"}
LIMIT_SETTING = "EIKIT_MAX_DECOMPRESSED_MB"


def quote(value: Any, limit: int = 100) -> str:
    """``repr(value)`` cut to about ``limit`` characters: request content stays out of logs."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...(%d chars)" % len(text)


def human(size: int) -> str:
    """``3958241859993`` -> ``'3.6 TiB'``; exact bytes below 1 KiB; any int works."""
    if size < 1024:
        return "%d bytes" % size
    if size.bit_length() > 70:
        return "over 1 ZiB"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024:
            return "%.1f %s" % (value, unit)
    return "%.1f EiB" % (value / 1024)


class Header(NamedTuple):
    dtype: np.dtype
    shape: Tuple[int, ...]
    fortran_order: bool
    offset: int  # where the array data starts


def _depth(text: str) -> int:
    """Bracket nesting of ``text`` outside quoted names (an upper bound is enough)."""
    depth = deepest = 0
    quote_char = ""
    for char in text:
        if quote_char:
            if char == quote_char:
                quote_char = ""
        elif char in "'\"":
            quote_char = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _header_dict(text: str, what: str) -> Dict[str, Any]:
    opening = text.count("(") + text.count("[") + text.count("{")
    if opening > MAX_HEADER_DEPTH and _depth(text) > MAX_HEADER_DEPTH:
        raise BadRequest("%s: header nests deeper than %d brackets" % (what, MAX_HEADER_DEPTH))
    try:
        # Any exception from parsing a <= 10,000-character literal is the header's fault:
        # SyntaxError, tokenize.TokenError, ValueError (digit limits), MemoryError and
        # RecursionError (nesting, on old parsers), TypeError...
        value = ast.literal_eval(text)
    except Exception as exc:
        raise BadRequest(
            "%s: header is not a Python literal (%s): %s" % (what, type(exc).__name__, quote(text))
        ) from None
    if not isinstance(value, dict) or set(value) != HEADER_KEYS:
        raise BadRequest(
            "%s: header must be a dict with keys 'descr', 'fortran_order', 'shape': %s"
            % (what, quote(text))
        )
    return value


def _dtype(descr: Any, what: str) -> np.dtype:
    try:
        dtype = np.lib.format.descr_to_dtype(descr)
    except Exception:  # TypeError, ValueError, KeyError, IndexError...: all the header's
        raise BadRequest("%s: descr is not a dtype: %s" % (what, quote(descr))) from None
    if dtype.hasobject:
        raise BadRequest("%s: object arrays are never unpickled (dtype %s)" % (what, dtype))
    if dtype.subdtype is not None or dtype.itemsize == 0:
        raise BadRequest("%s: unsupported dtype %s" % (what, quote(str(dtype))))
    return dtype


def read_header(data: bytes, what: str = "NPY body") -> Header:
    """Parse and check an NPY header; nothing is allocated from what it declares."""
    if not data.startswith(MAGIC):
        if data.startswith(ZIP_MAGIC):
            raise BadRequest("%s is an NPZ (zip) archive, not NPY" % what)
        raise BadRequest("%s does not start with the NPY magic string %r" % (what, MAGIC))
    if len(data) < len(MAGIC) + 2:
        raise BadRequest("%s ends inside the NPY preamble" % what)
    version = (data[6], data[7])
    if version not in VERSIONS:
        raise BadRequest("%s: unsupported NPY format version %d.%d" % ((what,) + version))
    length_format, encoding = VERSIONS[version]
    start = 8 + struct.calcsize(length_format)
    if len(data) < start:
        raise BadRequest("%s ends inside the NPY preamble" % what)
    (length,) = struct.unpack(length_format, data[8:start])
    if length > MAX_HEADER_CHARS * 4:  # utf8: up to 4 bytes per character
        raise BadRequest("%s: header of %d bytes is too long" % (what, length))
    if len(data) < start + length:
        raise BadRequest(
            "%s ends inside its header (%d of %d bytes)" % (what, len(data) - start, length)
        )
    try:
        text = data[start : start + length].decode(encoding)
    except UnicodeDecodeError as exc:
        raise BadRequest("%s: header is not %s: %s" % (what, encoding, exc)) from None
    if len(text) > MAX_HEADER_CHARS:
        raise BadRequest("%s: header of %d characters is too long" % (what, len(text)))
    header = _header_dict(text, what)
    shape, fortran_order = header["shape"], header["fortran_order"]
    if (
        not isinstance(shape, tuple)
        or len(shape) > MAX_DIMS
        or not all(type(dim) is int and dim >= 0 for dim in shape)
    ):
        raise BadRequest(
            "%s: shape must be a tuple of at most %d non-negative ints: %s"
            % (what, MAX_DIMS, quote(shape))
        )
    if not isinstance(fortran_order, bool):
        raise BadRequest(
            "%s: fortran_order must be True or False: %s" % (what, quote(fortran_order))
        )
    return Header(_dtype(header["descr"], what), shape, fortran_order, start + length)


def load_npy(data: bytes, limit: int, what: str = "NPY body") -> np.ndarray:
    """An ndarray from NPY bytes: the header's size must match the data and fit the limit."""
    header = read_header(data, what)
    count = 1
    for dim in header.shape:
        count *= dim  # Python ints: no overflow, however large the declared shape
    declared = count * header.dtype.itemsize
    present = len(data) - header.offset
    if declared != present:
        raise BadRequest(
            "%s: header declares shape %s of %s, %s of data, but %s follow the header"
            % (what, quote(header.shape), header.dtype, human(declared), human(present))
        )
    span = header.dtype.itemsize
    for dim in header.shape:
        span *= dim or 1
    if span > INTP_MAX:  # numpy cannot even describe it, empty (a 0 in the shape) or not
        raise BadRequest("%s: shape %s is too large for numpy" % (what, quote(header.shape)))
    if declared > limit:
        raise PayloadTooLarge(
            "%s: %s of array data is over the %s limit (%s)"
            % (what, human(declared), human(limit), LIMIT_SETTING)
        )
    flat = np.frombuffer(data, dtype=header.dtype, count=count, offset=header.offset)
    array = flat.copy()  # writable and owning its memory, as np.load returns it
    if header.fortran_order:
        return array.reshape(header.shape[::-1]).transpose()
    return array.reshape(header.shape)


def load_npz(data: bytes, limit: int) -> Dict[str, np.ndarray]:
    """Every member of an NPZ archive as an ndarray, keyed by name without ``.npy``."""
    if data.startswith(MAGIC):
        raise BadRequest("NPZ body is an NPY array, not an NPZ archive")
    try:
        return _load_npz(data, limit)
    except (EikitError, MemoryError):
        raise
    except Exception as exc:
        # zipfile and zlib raise BadZipFile, zlib.error, EOFError, struct.error,
        # NotImplementedError, RuntimeError (encrypted), ValueError, UnicodeDecodeError...
        # on a malformed archive: each is the body's fault.
        raise BadRequest(
            "body is not a valid NPZ archive: %s: %s" % (type(exc).__name__, quote(str(exc), 200))
        ) from None


def _load_npz(data: bytes, limit: int) -> Dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        if not members:
            raise BadRequest("NPZ archive holds no arrays")
        total = sum(member.file_size for member in members)
        if total > limit:
            raise PayloadTooLarge(
                "NPZ archive declares %s of decompressed data, over the %s limit (%s)"
                % (human(total), human(limit), LIMIT_SETTING)
            )
        arrays: Dict[str, np.ndarray] = {}
        for member in members:
            what = "NPZ member %s" % quote(member.filename)
            if member.compress_type not in COMPRESSIONS:
                raise BadRequest(
                    "%s: compression method %d is not supported (only stored or deflated)"
                    % (what, member.compress_type)
                )
            with archive.open(member) as stream:
                # The stream stops at the declared size, however much the data inflates
                # to; a shorter stream or a CRC mismatch raises (BadZipFile, EOFError).
                raw = stream.read(member.file_size)
            if len(raw) != member.file_size:
                raise BadRequest("%s is shorter than its zip entry declares" % what)
            name = member.filename
            arrays[name[:-4] if name.endswith(".npy") else name] = load_npy(raw, limit, what)
        return arrays
