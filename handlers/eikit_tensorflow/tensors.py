"""TF Serving's REST JSON <-> numpy, by TF Serving's rules (``tensorflow_serving/util/
json_tensor.cc``), without TensorFlow: the in-process executor feeds the arrays to the
signature and turns its outputs back into the answers TF Serving gives.

Requests: ``instances`` is a non-empty list, of plain values when the signature has one
input, or of objects with one key per input (base64 ``{"b64": ...}`` objects are values);
``inputs`` is a value (one input) or an object of named inputs. The value's JSON type must
fit the input's dtype: floats take any number (not one a float cannot hold exactly),
integers only integers, strings strings or ``{"b64"}`` objects, bools bools.

Answers: row form (``instances``) gives ``{"predictions": [...]}``, one item per instance:
the bare value when the signature has one output, else an object of outputs; columnar
(``inputs``) gives ``{"outputs": value}`` or ``{"outputs": {name: value}}``. String
outputs whose name ends in ``_bytes`` come back as ``{"b64": ...}``. float32 values are
written as TF Serving writes them: ``%g`` when that reads back as the same float32, else
nine significant digits, so a client parsing the answer gets the same numbers as from TF
Serving (0.1, not 0.10000000149011612).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from eikit.errors import BadRequest

FLOATS = ("float16", "bfloat16", "float32", "float64", "half", "double")
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16")
UINTS_WIDE = ("uint32", "uint64")
B64 = "b64"
BYTES_SUFFIX = "_bytes"
FLOAT32_MAX_INT = (1 << 24) - 1


class Spec:
    """What a signature says of one tensor: its dtype name (TensorFlow's: ``float32``,
    ``string``, ...) and its shape (None for an unknown dimension; None for unknown rank)."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: str, shape: Any = None) -> None:
        self.dtype = dtype
        self.shape = shape

    def __repr__(self) -> str:
        return "Spec(%r, %r)" % (self.dtype, self.shape)


def _text(value: Any) -> str:
    import json

    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64), str)


def _b64decode(value: Dict[str, str]) -> bytes:
    try:
        return base64.b64decode(value[B64], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Unable to base64 decode") from None


def _strings(value: Any) -> Any:
    """Nested lists of str / {"b64"} as nested lists of bytes (TF's string tensors)."""
    if isinstance(value, list):
        return [_strings(item) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        if _is_b64(value):
            return _b64decode(value)
        raise BadRequest("JSON Value: %s not formatted correctly for base64 data" % _text(value))
    raise BadRequest(
        "JSON Value: %s Type: %s is not of expected type: string"
        % (_text(value), type(value).__name__)
    )


TFS_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half"}


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    return "Object"


def _fits(leaf: Any, dtype: str) -> bool:
    if dtype in FLOATS:
        return isinstance(leaf, (int, float)) and not isinstance(leaf, bool)
    if dtype in INTS or dtype in UINTS_WIDE:
        return isinstance(leaf, int) and not isinstance(leaf, bool)
    if dtype == "bool":
        return isinstance(leaf, bool)
    return True


def _first_misfit(value: Any, dtype: str) -> Any:
    """The first leaf of ``value`` that ``dtype`` cannot take (a list of one: None is a leaf)."""
    if isinstance(value, list):
        for item in value:
            found = _first_misfit(item, dtype)
            if found:
                return found
        return []
    return [] if _fits(value, dtype) else [value]


def type_error(value: Any, dtype: str) -> str:
    """TF Serving's message for a value of the wrong JSON type."""
    bad = _first_misfit(value, dtype)
    leaf = bad[0] if bad else value
    return "JSON Value: %s Type: %s is not of expected type: %s" % (
        _text(leaf),
        _json_type(leaf),
        TFS_TYPE_NAMES.get(dtype, dtype),
    )


def to_array(value: Any, spec: Spec, name: str) -> np.ndarray:
    """One input's JSON value as an array of the signature's dtype; ``BadRequest`` for a
    value TF Serving refuses (wrong JSON type, ragged lists, a lossy float)."""
    dtype = spec.dtype
    if dtype == "string":
        try:
            array = np.array(_strings(value), dtype=object)
        except ValueError as exc:
            raise BadRequest("input %r: lists of uneven length (%s)" % (name, exc)) from None
        return array
    if _contains_object(value):
        raise BadRequest(type_error(value, dtype))
    try:
        raw = np.array(value)
    except (ValueError, TypeError) as exc:
        raise BadRequest("input %r: lists of uneven length (%s)" % (name, exc)) from None
    kind = raw.dtype.kind
    if raw.size == 0:
        kind = "b" if dtype == "bool" else "i" if dtype in INTS + UINTS_WIDE else "f"
    if dtype in FLOATS:
        ok = kind in "iuf"
        narrow = dtype in ("float32", "half", "float16", "bfloat16")
        if ok and kind in "iu" and narrow and raw.size and int(np.abs(raw).max()) > FLOAT32_MAX_INT:
            raise BadRequest(
                "input %r: cannot convert an integer above 2^24 to %s without loss of "
                "precision" % (name, dtype)
            )
    elif dtype in INTS or dtype in UINTS_WIDE:
        ok = kind in "iu"
    elif dtype == "bool":
        ok = kind == "b"
    else:
        raise BadRequest("input %r: conversion of JSON to type %s is not supported" % (name, dtype))
    if not ok:
        raise BadRequest(type_error(value, dtype))
    np_dtype = {"half": "float16", "double": "float64", "bfloat16": "float32"}.get(dtype, dtype)
    try:
        return raw.astype(np_dtype)
    except (OverflowError, ValueError) as exc:
        raise BadRequest("input %r: %s" % (name, exc)) from None


def _contains_object(value: Any) -> bool:
    """Whether a JSON value's first leaf is an object (numpy makes the others an object
    array, which the dtype check refuses)."""
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, dict)


def _element_error(position: int, error: BadRequest, key: str = "") -> BadRequest:
    return BadRequest(
        "Failed to process element: %d%s of 'instances' list. Error: Invalid argument: %s"
        % (position, " key: %s" % key if key else "", error.message)
    )


def _column(items: List[Any], spec: Spec, name: str, key: bool) -> np.ndarray:
    """The batch of one input from the instances; a refused value names its instance."""
    try:
        return to_array(items, spec, name)
    except BadRequest as exc:
        for position, item in enumerate(items):
            try:
                to_array([item], spec, name)
            except BadRequest as one:
                raise _element_error(position, one, name if key else "") from None
        raise _element_error(0, exc, name if key else "") from None


def from_instances(instances: Any, specs: Mapping[str, Spec]) -> Dict[str, np.ndarray]:
    """``instances`` (row form) as one batched array per input."""
    if not isinstance(instances, list):
        raise BadRequest("Excepting 'instances' to be an list/array")
    if not instances:
        raise BadRequest("No values in 'instances' array")
    names = sorted(specs)
    first = instances[0]
    objects = isinstance(first, dict) and not _is_b64(first)
    if not objects:
        if len(names) > 1:
            raise BadRequest(
                "instances is a plain list, but expecting list of objects as multiple input "
                "tensors required as per tensorinfo_map (inputs: %s)" % ", ".join(names)
            )
        for position, item in enumerate(instances):
            if isinstance(item, dict) and not _is_b64(item):
                raise BadRequest(
                    "Expecting value/list but got object at item %d of input list" % position
                )
        return {names[0]: _column(instances, specs[names[0]], names[0], False)}
    columns: Dict[str, List[Any]] = {name: [] for name in names}
    wanted = set(names)
    for position, item in enumerate(instances):
        if not isinstance(item, dict) or _is_b64(item):
            raise BadRequest("Expecting object but got list at item %d of input list" % position)
        unknown = [key for key in item if key not in wanted]
        if unknown:
            raise BadRequest(
                "Failed to process element: %d key: %s of 'instances' list. Error: Invalid "
                "argument: JSON object: does not have named input: %s (inputs: %s)"
                % (position, unknown[0], unknown[0], ", ".join(names))
            )
        if set(item) != wanted:
            raise BadRequest(
                "Failed to process element: %d of 'instances' list. JSON object: %s keys must "
                "be equal to: %s" % (position, _text(item), ",".join(names))
            )
        for name in names:
            columns[name].append(item[name])
    return {name: _column(columns[name], specs[name], name, True) for name in names}


def from_inputs(inputs: Any, specs: Mapping[str, Spec]) -> Dict[str, np.ndarray]:
    """``inputs`` (columnar form) as one array per input."""
    names = sorted(specs)
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(names) > 1:
            raise BadRequest(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map (inputs: %s)" % ", ".join(names)
            )
        return {names[0]: to_array(inputs, specs[names[0]], names[0])}
    arrays = {}
    for name in names:
        if name not in inputs:
            raise BadRequest(
                "Missing named input: %s in 'inputs' object (inputs: %s)" % (name, ", ".join(names))
            )
        arrays[name] = to_array(inputs[name], specs[name], name)
    return arrays


def request_arrays(body: Mapping[str, Any], specs: Mapping[str, Spec]) -> Tuple[str, Dict]:
    """('row' or 'columnar', arrays) for a predict body."""
    if "instances" in body:
        if "inputs" in body:
            raise BadRequest(
                "Not formatted correctly expecting only one of 'inputs' or 'instances' keys "
                "to exist"
            )
        return "row", from_instances(body["instances"], specs)
    if "inputs" in body:
        return "columnar", from_inputs(body["inputs"], specs)
    raise BadRequest("Missing 'inputs' or 'instances' key")


# --- answers -----------------------------------------------------------------------------


def float32_values(array: np.ndarray) -> List[Any]:
    """float32 values as the Python floats a client parses from TF Serving's text."""
    flat = array.ravel()
    short = np.array(["%g" % x for x in flat.tolist()], dtype=object)
    values = np.array([float(s) for s in short], dtype=np.float64)
    exact = values.astype(np.float32) == flat
    same = exact | np.isnan(flat)
    if not same.all():
        for index in np.flatnonzero(~same).tolist():
            values[index] = float("%.9g" % float(flat[index]))
    return values.tolist()


def _nest(values: List[Any], shape: Sequence[int]) -> Any:
    if not shape:
        return values[0]
    if len(shape) == 1:
        return values
    step = int(np.prod(shape[1:])) if shape[1:] else 1
    return [_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def to_json(array: Any, name: str) -> Any:
    """One output tensor (numpy) as TF Serving writes it."""
    array = np.asarray(array)
    kind = array.dtype.kind
    if kind == "f" and array.dtype.itemsize <= 4:
        return _nest(float32_values(array.astype(np.float32)), array.shape)
    if kind in "fiub":
        return array.tolist()
    if kind in "OSU":
        as_bytes = name.endswith(BYTES_SUFFIX)

        def one(item: Any) -> Any:
            if isinstance(item, str):
                item = item.encode("utf-8")
            if as_bytes:
                return {B64: base64.b64encode(item).decode("ascii")}
            return item.decode("utf-8", errors="replace")

        flat = [one(item) for item in array.ravel().tolist()]
        return _nest(flat, array.shape)
    raise BadRequest("Failed to write JSON value for tensor type: %s" % array.dtype)


def row_answer(outputs: Mapping[str, Any]) -> Dict[str, Any]:
    """``{"predictions": [...]}``: one item per batch row."""
    batch = -1
    for name in sorted(outputs):
        shape = np.shape(outputs[name])
        if not shape:
            raise BadRequest("Tensor name: %s has no shape information " % name)
        if batch >= 0 and shape[0] != batch:
            raise BadRequest(
                "Tensor name: %s has inconsistent batch size: %d expecting: %d"
                % (name, shape[0], batch)
            )
        batch = shape[0]
    columns = {name: to_json(outputs[name], name) for name in sorted(outputs)}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [{name: columns[name][i] for name in columns} for i in range(batch)]}


def columnar_answer(outputs: Mapping[str, Any]) -> Dict[str, Any]:
    """``{"outputs": value}`` for one output, ``{"outputs": {name: value}}`` for several."""
    columns = {name: to_json(outputs[name], name) for name in sorted(outputs)}
    if len(columns) == 1:
        return {"outputs": next(iter(columns.values()))}
    return {"outputs": columns}
