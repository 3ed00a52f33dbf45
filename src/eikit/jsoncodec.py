"""JSON bodies through orjson where it is installed, with the values Python's ``json`` gives.

orjson reads and writes JSON several times faster than ``json`` (measured here: a 3.1 MB
body of 150,528 floats parsed in 8 ms instead of 48 ms; a ``[[1000 floats]]`` answer written
in 0.02 ms instead of 0.45 ms). It is a default dependency; without it (a platform with no
wheel) everything here is ``json``. Where the two would differ, ``json``'s answer is kept:

- reading: orjson refuses ``NaN``/``Infinity``, UTF-16/32 and BOM-prefixed bodies and lone
  surrogates, which ``json`` reads; such bodies are read again with ``json`` (and refused
  with ``json``'s message when they are not JSON at all). Some orjson versions read an
  integer beyond 64 bits as a float where ``json`` keeps it exact: a parsed value holding a
  float of 2**63 or more is read again with ``json`` (``loads`` checks; ``loads_unsure``
  leaves the check to a caller that can do it faster, e.g. on an array).
- writing: values are written compact, non-finite floats as ``null`` (what eikit's strict
  JSON answers always held). Numbers keep their values, though not always their spelling
  (``1e-07`` becomes ``1e-7``), and text is UTF-8 rather than ``\\u`` escapes. A value orjson
  will not write (an integer beyond 64 bits, a subclass of a builtin, a dataclass, a date)
  returns None so the caller writes it with ``json``; float32 and float16 arrays are widened
  to float64 first, so each number is written as the double ``tolist()`` gives.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Tuple, Union

import numpy as np

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by the test that hides orjson
    orjson = None  # type: ignore[assignment]

HUGE = float(2**63)  # an integer this large may have been read as a float by orjson
# An integer that large has 19 digits or more after a character that is neither a digit nor
# a point. Small bodies are searched for one (0.7 us for 600 bytes) before any value is
# checked; larger ones are checked after parsing, an array in one vectorised pass.
_DIGITS = bytes(57 if 48 <= code <= 57 else 46 if code == 46 else 32 for code in range(256))
_LONG_INTEGER = b" " + b"9" * 19
SEARCH_BELOW = 64 * 1024
# numpy kinds written directly: bool, signed and unsigned integers, floats (as float64)
_ARRAY_KINDS = "biuf"

if orjson is not None:
    _PASSTHROUGH = (
        orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
    )
    _NUMPY = orjson.OPT_SERIALIZE_NUMPY | _PASSTHROUGH


def available() -> bool:
    return orjson is not None


def loads_unsure(data: bytes) -> Tuple[Any, bool]:
    """The parsed value, and whether it is unsure: orjson parsed it and a float of HUGE or
    more in it may be an integer ``json`` would keep exact (see ``has_huge``). Invalid JSON
    raises ``ValueError`` as ``json.loads`` raises it."""
    if orjson is not None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            return value, len(data) >= SEARCH_BELOW or _long_integer(data)
    return json.loads(data), False


def try_loads(data: Union[bytes, str]) -> Tuple[bool, Any]:
    """``(True, value)`` where orjson read ``data`` to what ``json.loads`` gives;
    ``(False, None)`` where the caller should read it with ``json`` (orjson missing, a body
    it refuses such as NaN or a BOM, or one that may spell an integer beyond 64 bits), so
    what ``json`` accepts and the messages it refuses with stay the caller's."""
    if orjson is None:
        return False, None
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        value = orjson.loads(raw)
    except (UnicodeEncodeError, orjson.JSONDecodeError):
        return False, None
    if _long_integer(raw):
        return False, None
    return True, value


def _long_integer(data: bytes) -> bool:
    """Whether ``data`` may spell an integer of 19 digits or more."""
    digits = bytes(data).translate(_DIGITS)
    return _LONG_INTEGER in digits or digits.startswith(_LONG_INTEGER[1:])


def has_huge(value: Any) -> bool:
    """Whether ``value`` holds a float of magnitude HUGE or more (or NaN, never from orjson)."""
    todo = [value]
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is float:
            if not -HUGE < item < HUGE:
                return True
        elif kind is list:
            todo.extend(item)
        elif kind is dict:
            todo.extend(item.values())
    return False


def array_has_huge(array: np.ndarray) -> bool:
    """``has_huge`` for a float array, vectorised."""
    return bool(array.size) and not bool(np.all(np.abs(array) < HUGE))


def loads(data: bytes) -> Any:
    """``json.loads(data)``, faster."""
    value, unsure = loads_unsure(data)
    if unsure and has_huge(value):
        return json.loads(data)
    return value


def dumps(value: Any) -> Optional[bytes]:
    """Compact JSON of plain Python values (non-finite floats as null), or None where orjson
    is missing or will not write ``value`` exactly as ``json`` would."""
    if orjson is None:
        return None
    try:
        return orjson.dumps(value, option=_PASSTHROUGH)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None


def dumps_array(array: np.ndarray) -> Optional[bytes]:
    """``dumps(array.tolist())`` without the list, for arrays of booleans, integers and
    floats; None for anything else."""
    if orjson is None or array.dtype.kind not in _ARRAY_KINDS or array.dtype.byteorder == ">":
        return None
    if array.ndim == 0:
        return dumps(array.item())
    if array.dtype.kind == "f":
        array = np.ascontiguousarray(array, dtype=np.float64)
    elif not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    try:
        return orjson.dumps(array, option=_NUMPY)
    except TypeError:
        return None
