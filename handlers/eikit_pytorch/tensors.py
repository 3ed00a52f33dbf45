"""Decoded request data to tensors (the default input_fn), model inputs (the default
predict_fn), and model outputs to CPU numpy arrays (the default output_fn).

Inputs: a numpy array keeps its dtype (eikit's codecs already turn JSON and CSV numbers
into float32 arrays, as AWS's toolkit did with ``torch.FloatTensor``; NPY keeps its own).
Python lists and numbers (from a user ``input_fn``, or JSON the codecs left as parsed) are
text-derived: their float64 becomes float32 and their integers stay int64. A dict (NPZ)
gives one positional input per entry, in order. Tensors from a user ``input_fn`` pass as
they are, and a tuple or list made only of tensors is taken as positional inputs.
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

from eikit.errors import BadRequest

_TEXT_TYPES = (list, tuple, bool, int, float)  # what JSON and CSV decode to
_NUMERIC_KINDS = "biufc"


def _array_to_tensor(array: np.ndarray, what: str) -> Any:
    import torch

    if array.dtype.kind not in _NUMERIC_KINDS:
        raise BadRequest(
            "%s must be numbers, got dtype %s; define input_fn to convert it" % (what, array.dtype)
        )
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if not array.flags.writeable:  # torch.from_numpy wants memory it may write
        array = array.copy()
    try:
        return torch.from_numpy(array)
    except ValueError:  # negative strides
        return torch.from_numpy(np.ascontiguousarray(array))
    except TypeError as exc:
        raise BadRequest("%s: torch does not take dtype %s" % (what, array.dtype)) from exc


def to_tensor(value: Any, what: str = "input") -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return _array_to_tensor(value, what)
    if isinstance(value, _TEXT_TYPES):
        try:
            array = np.asarray(value)
        except ValueError as exc:  # ragged nesting
            raise BadRequest("%s is not a rectangular array: %s" % (what, exc)) from exc
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        return _array_to_tensor(array, what)
    if isinstance(value, np.generic):
        return _array_to_tensor(np.asarray(value), what)
    raise BadRequest(
        "the default predict_fn cannot take %s as %s; define input_fn to turn the request "
        "into tensors" % (type(value).__name__, what)
    )


def _all_tensors(data: Any) -> bool:
    import torch

    return (
        isinstance(data, (list, tuple))
        and bool(data)
        and all(isinstance(item, torch.Tensor) for item in data)
    )


def _not_bytes(data: Any, hook: str) -> None:
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        raise BadRequest(
            "the default %s takes arrays (JSON, CSV, NPY or NPZ requests), not %s; "
            "define input_fn in the inference script to turn this content into tensors"
            % (hook, type(data).__name__)
        )


def request_tensors(decoded: Any, hook: str = "input_fn") -> Any:
    """The default input_fn's answer for a decoded request: one tensor, or a dict of
    tensors for a dict (NPZ, a JSON object), keys kept; tensors and lists of tensors pass."""
    import torch

    _not_bytes(decoded, hook)
    if isinstance(decoded, torch.Tensor) or _all_tensors(decoded):
        return decoded
    if isinstance(decoded, dict):
        if not decoded:
            raise BadRequest("the request holds no arrays")
        return {key: to_tensor(value, "input %r" % str(key)) for key, value in decoded.items()}
    return to_tensor(decoded)


def to_inputs(data: Any) -> List[Any]:
    """The model's positional inputs for ``data``: a tensor, a dict (values in order), a
    list or tuple of tensors, or arrays and lists as a user input_fn may return them."""
    tensors = request_tensors(data, "predict_fn")
    if isinstance(tensors, dict):
        return list(tensors.values())
    if isinstance(tensors, (list, tuple)):
        return list(tensors)
    return [tensors]


def to_numpy(value: Any) -> Any:
    """Tensors (also inside tuples, lists and dicts) as CPU numpy arrays; the rest unchanged."""
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        if tensor.is_quantized:
            tensor = tensor.dequantize()
        tensor = tensor.cpu()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.float()
        return tensor.numpy()
    if isinstance(value, dict):
        return {key: to_numpy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_numpy(item) for item in value]
    return value
