"""TensorFlow's ``TensorProto`` and numpy, both ways, as ``tf.make_tensor_proto`` and
``tf.make_ndarray`` do it but without TensorFlow's Python API; and what eikit needs of a
model's ``SignatureDef``s (each input's dtype and shape, each signature's method).

The gRPC client builds its requests with it and reads the answers with it; the JSON on
either side is ``tensors``' (the same conversion the in-process path uses), so a request
answers the same on both paths. ``from_array`` imports TensorFlow's protos (and so
TensorFlow, which owns them) when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np

from eikit_tensorflow.tensors import Spec

# DataType number -> (TensorFlow's dtype name, numpy type, the TensorProto field for values).
# The types TF Serving's JSON reads and writes, and float16/bfloat16 in and out.
DTYPES: Dict[int, Tuple[str, Any, str]] = {
    1: ("float32", np.float32, "float_val"),
    2: ("float64", np.float64, "double_val"),
    3: ("int32", np.int32, "int_val"),
    4: ("uint8", np.uint8, "int_val"),
    5: ("int16", np.int16, "int_val"),
    6: ("int8", np.int8, "int_val"),
    7: ("string", object, "string_val"),
    9: ("int64", np.int64, "int64_val"),
    10: ("bool", np.bool_, "bool_val"),
    17: ("uint16", np.uint16, "int_val"),
    19: ("float16", np.float16, "half_val"),
    22: ("uint32", np.uint32, "uint32_val"),
    23: ("uint64", np.uint64, "uint64_val"),
}
NUMBERS = {name: number for number, (name, _, _) in DTYPES.items()}
DT_BFLOAT16 = 14  # sent as float32 on the JSON side, as the in-process path feeds it


def dtype_name(number: int) -> str:
    if number == DT_BFLOAT16:
        return "bfloat16"
    return DTYPES[number][0] if number in DTYPES else "DataType(%d)" % number


class UnsupportedTensor(ValueError):
    """A tensor of a type this conversion does not carry (TF Serving's JSON has no form for it
    either: ``Failed to write JSON value for tensor type``)."""


def to_array(tensor: Any) -> np.ndarray:
    """A TensorProto's values as an array of its shape: ``tensor_content`` when set, else the
    typed ``*_val`` field, where fewer values than the shape holds repeat the last one (the
    compressed form ``tf.make_tensor_proto`` may write)."""
    if tensor.dtype not in DTYPES:
        raise UnsupportedTensor(
            "Failed to write JSON value for tensor type: %s" % dtype_name(tensor.dtype)
        )
    _, np_type, values_field = DTYPES[tensor.dtype]
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    count = int(np.prod(shape)) if shape else 1
    if tensor.tensor_content and np_type is not object:
        return np.frombuffer(tensor.tensor_content, dtype=np_type).reshape(shape).copy()
    values = list(getattr(tensor, values_field))
    if len(values) < count:
        values += [values[-1] if values else (b"" if np_type is object else 0)] * (
            count - len(values)
        )
    if np_type is object:
        array = np.empty(count, dtype=object)
        array[:] = values[:count]
    elif values_field == "half_val":  # float16 bit patterns, as ints
        array = np.array(values[:count], dtype=np.uint16).view(np.float16)
    else:
        array = np.array(values[:count]).astype(np_type)
    return array.reshape(shape)


def from_array(array: np.ndarray, dtype: int) -> Any:
    """A TensorProto of DataType ``dtype`` holding ``array``: numbers as ``tensor_content``,
    strings as ``string_val`` (what ``tf.make_tensor_proto`` writes)."""
    from tensorflow.core.framework import tensor_pb2

    tensor = tensor_pb2.TensorProto(dtype=dtype)
    for size in np.shape(array):
        tensor.tensor_shape.dim.add(size=int(size))
    if dtype == DT_BFLOAT16:  # the upper half of each float32
        bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32) >> 16
        tensor.half_val.extend(bits.astype(np.uint16).reshape(-1).tolist())
        return tensor
    if dtype not in DTYPES:
        raise UnsupportedTensor("Conversion of JSON to type: %s" % dtype_name(dtype))
    _, np_type, _ = DTYPES[dtype]
    if np_type is object:
        tensor.string_val.extend(
            item if isinstance(item, bytes) else str(item).encode("utf-8")
            for item in np.asarray(array, dtype=object).reshape(-1).tolist()
        )
    else:
        tensor.tensor_content = np.ascontiguousarray(array, dtype=np_type).tobytes()
    return tensor


@dataclass(frozen=True)
class SignatureInfo:
    """One SignatureDef as eikit uses it: its method name and its inputs' specs (the
    DataType number next to each, for the request protos)."""

    name: str
    method: str
    inputs: Dict[str, Spec] = field(default_factory=dict)
    dtypes: Dict[str, int] = field(default_factory=dict)
    outputs: Tuple[str, ...] = ()


def _shape(tensor_shape: Any) -> Optional[list]:
    if tensor_shape.unknown_rank:
        return None
    return [dim.size if dim.size >= 0 else None for dim in tensor_shape.dim]


def signature_info(name: str, signature_def: Any) -> SignatureInfo:
    """A ``SignatureDef`` proto (from GetModelMetadata or ``saved_model.pb``) read."""
    inputs = {
        key: Spec(dtype_name(info.dtype), _shape(info.tensor_shape))
        for key, info in signature_def.inputs.items()
    }
    return SignatureInfo(
        name,
        signature_def.method_name,
        inputs,
        {key: info.dtype for key, info in signature_def.inputs.items()},
        tuple(sorted(signature_def.outputs)),
    )


def signature_info_json(name: str, signature_def: Dict[str, Any]) -> SignatureInfo:
    """The same from TF Serving's REST metadata JSON (``GET .../metadata``: the proto's
    JSON form, dtypes by enum name such as ``DT_FLOAT``)."""

    def number(dtype: Any) -> int:
        if isinstance(dtype, int):
            return dtype
        text = str(dtype)
        if text == "DT_BFLOAT16":
            return DT_BFLOAT16
        wanted = {"DT_" + n.upper(): k for k, (n, _, _) in DTYPES.items()}
        wanted.update({"DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_HALF": 19})
        return wanted.get(text, 0)

    def shape(info: Dict[str, Any]) -> Optional[list]:
        tensor_shape = info.get("tensor_shape", {})
        if tensor_shape.get("unknown_rank"):
            return None
        sizes = [int(dim.get("size", 0)) for dim in tensor_shape.get("dim", [])]
        return [size if size >= 0 else None for size in sizes]

    inputs_json = signature_def.get("inputs", {})
    dtypes = {key: number(info.get("dtype")) for key, info in inputs_json.items()}
    return SignatureInfo(
        name,
        signature_def.get("method_name", ""),
        {key: Spec(dtype_name(dtypes[key]), shape(info)) for key, info in inputs_json.items()},
        dtypes,
        tuple(sorted(signature_def.get("outputs", {}))),
    )
