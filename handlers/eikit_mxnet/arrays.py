"""Decoded requests to NDArrays (the default input_fn), model inputs (the default
predict_fn), outputs to numpy (the default output_fn), and which forward errors are the
request's fault.

Inputs are made as AWS's MXNet toolkit makes them: ``mx.nd.array(decoded)`` on
``mx.cpu()``, which is float32 whatever the decoded dtype (JSON, CSV and NPY alike; that is
``mx.nd.array``'s default for numpy input). A dict (NPZ, a JSON object) gives a dict of
NDArrays, keys kept. NDArrays from a user ``input_fn`` pass as they are.

Forward errors: MXNet reports an input of the wrong shape, dtype or number as an
``MXNetError`` in its shape and type inference ("Shape inconsistent", "InferShape", ...).
Those are the client's (400, naming the shapes); anything else stays the server's.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, List, Optional, Sequence

import numpy as np

from eikit.errors import BadRequest

_NUMERIC_KINDS = "biuf"
_TEXT_TYPES = (list, tuple, bool, int, float)

_SHAPE_WORDS = re.compile(
    "|".join(
        (
            r"shape inconsistent",
            r"shape of unspecifie?d? arg",
            r"infershape",
            r"infer_shape",
            r"incompatible (input )?shape",
            r"type inconsistent",
            r"infertype",
            r"cannot reshape",
            r"size of input .* must",
            r"target shape size is different",
            r"expected \d+ (input|argument)s?",
            r"wrong number of (input|argument)s",
            r"dimension out of range",
            r"index out of range",
        )
    )
)
_SERVER_WORDS = re.compile(r"out of memory|cuda|cudnn|\beia\b|accelerator|device", re.I)


def to_ndarray(mx: Any, value: Any, what: str = "input") -> Any:
    """One value as AWS's default input_fn makes it: ``mx.nd.array(value)`` on mx.cpu()."""
    if isinstance(value, mx.nd.NDArray):
        return value
    if isinstance(value, (*_TEXT_TYPES, np.generic)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy < 1.24 warns on ragged lists
            try:
                value = np.asarray(value)
            except ValueError as exc:  # ragged nesting, numpy >= 1.24
                raise BadRequest("%s is not a rectangular array: %s" % (what, exc)) from exc
        if value.dtype.hasobject:
            raise BadRequest("%s is not a rectangular array of numbers" % what)
    if not isinstance(value, np.ndarray):
        raise BadRequest(
            "the default predict_fn cannot take %s as %s; define input_fn to turn the request "
            "into NDArrays" % (type(value).__name__, what)
        )
    if value.dtype.kind not in _NUMERIC_KINDS:
        raise BadRequest(
            "%s must be numbers, got dtype %s; define input_fn to convert it" % (what, value.dtype)
        )
    return mx.nd.array(value, ctx=mx.cpu())


def _not_bytes(data: Any, hook: str) -> None:
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        raise BadRequest(
            "the default %s takes arrays (JSON, CSV, NPY or NPZ requests), not %s; "
            "define input_fn in the inference script to turn this content into NDArrays"
            % (hook, type(data).__name__)
        )


def _all_ndarrays(mx: Any, data: Any) -> bool:
    return (
        isinstance(data, (list, tuple))
        and bool(data)
        and all(isinstance(item, mx.nd.NDArray) for item in data)
    )


def request_arrays(mx: Any, decoded: Any, hook: str = "input_fn") -> Any:
    """The default input_fn's answer: one NDArray, or a dict of them for a dict."""
    _not_bytes(decoded, hook)
    if isinstance(decoded, mx.nd.NDArray) or _all_ndarrays(mx, decoded):
        return decoded
    if isinstance(decoded, dict):
        if not decoded:
            raise BadRequest("the request holds no arrays")
        return {key: to_ndarray(mx, value, "input %r" % str(key)) for key, value in decoded.items()}
    return to_ndarray(mx, decoded)


def to_inputs(mx: Any, data: Any, names: Optional[Sequence[str]] = None) -> List[Any]:
    """The model's positional inputs: a dict by the model's input ``names`` when its keys
    are those names, else its values in order; a list or tuple of NDArrays; one NDArray."""
    arrays = request_arrays(mx, data, "predict_fn")
    if isinstance(arrays, dict):
        if names and set(arrays) == set(names):
            return [arrays[name] for name in names]
        return list(arrays.values())
    if isinstance(arrays, (list, tuple)):
        return list(arrays)
    return [arrays]


def wait(mx: Any, value: Any) -> Any:
    """Block until the outputs are computed, so an error of the forward pass (MXNet runs
    it asynchronously) is raised in predict_fn, where it is classified."""
    if isinstance(value, mx.nd.NDArray):
        value.wait_to_read()
    elif isinstance(value, (list, tuple)):
        for item in value:
            wait(mx, item)
    elif isinstance(value, dict):
        for item in value.values():
            wait(mx, item)
    return value


def to_numpy(mx: Any, value: Any) -> Any:
    """NDArrays (also inside tuples, lists and dicts) as numpy arrays; the rest unchanged."""
    if isinstance(value, mx.nd.NDArray):
        if value.stype != "default":
            value = value.tostype("default")
        return value.asnumpy()
    if isinstance(value, dict):
        return {key: to_numpy(mx, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_numpy(mx, item) for item in value]
    return value


def describe(inputs: Sequence[Any]) -> str:
    """``shape [1, 3] float32`` for each input."""
    parts = []
    for array in inputs:
        shape = getattr(array, "shape", None)
        if shape is None:
            parts.append(type(array).__name__)
            continue
        dtype = getattr(getattr(array, "dtype", None), "__name__", str(getattr(array, "dtype", "")))
        parts.append("shape %s %s" % (list(shape), dtype))
    return ", ".join(parts) or "no inputs"


def _message(exc: BaseException) -> str:
    """The line of MXNet's message that says what is wrong (its C++ traceback left out)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if _SHAPE_WORDS.search(line.lower()):
            return re.sub(r"^\w*Error: ", "", line)
    return re.sub(r"^\w*Error: ", "", lines[-1]) if lines else type(exc).__name__


def refusal(mx: Any, exc: BaseException, inputs: Sequence[Any]) -> Optional[BadRequest]:
    """A 400 for a forward error caused by the inputs, or None when it is not one."""
    if not isinstance(exc, (mx.base.MXNetError, ValueError, TypeError, IndexError, AssertionError)):
        return None
    text = str(exc)
    if _SERVER_WORDS.search(text) or not _SHAPE_WORDS.search(text.lower()):
        return None
    noun = "input" if len(inputs) == 1 else "inputs"
    return BadRequest(
        "the model cannot take the request's %s (%s): %s" % (noun, describe(inputs), _message(exc))
    )


def empty_request(inputs: Sequence[Any]) -> Optional[BadRequest]:
    """A 400 when every input has no elements (``[]``, ``[[]]``, a 0-row array)."""
    if inputs and all(int(np.prod(getattr(array, "shape", (1,)))) == 0 for array in inputs):
        return BadRequest("the request holds no values (%s)" % describe(inputs))
    return None
