"""Which errors of a forward call are the request's fault, and how to tell the client.

The default ``predict_fn`` runs a model that loaded fine on tensors made from the
request. When the forward call fails because of what those tensors are (their shape,
dtype, number, or an index out of the model's range), the client sent something the model
cannot take: a 400 naming the shapes, not a 500. The errors are recognised by torch's own
wording (ATen, TorchScript's argument checks, Python's for eager ``forward``); anything
else (out of memory, a device error, a bug in the model) stays the server's error. A
user ``predict_fn`` is not covered: its exceptions are its own.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Sequence

from eikit.errors import BadRequest

_CLIENT_ERRORS = (RuntimeError, ValueError, IndexError, TypeError)

# torch's wording for an input of the wrong shape, dtype or number (lower case).
_SHAPE_WORDS = re.compile(
    "|".join(
        (
            r"shapes cannot be multiplied",
            r"size mismatch",
            r"must match the size",
            r"sizes of tensors must match",
            r"is invalid for input of size",
            r"need to be at least \d+d",
            r"expected (\d+d|\S+ \(unbatched\)|input|tensor|scalar type|all inputs)",
            r"to have \d+ channels",
            r"dimension out of range",
            r"index out of range in self",
            r"must have the same dtype",
            r"have one of the following scalar types",
            r"forward\(\) (is missing value|expected at most|missing \d+ required|takes \d+)",
        )
    )
)
# Never the client's, whatever else the message says.
_SERVER_WORDS = re.compile(
    r"out of memory|cuda error|device-side|same device|\bneuron|\beia\b|accelerator", re.I
)


def _message(exc: BaseException) -> str:
    """The last line of the error (TorchScript prepends the failing code), without the
    ``RuntimeError:`` that TorchScript repeats."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return re.sub(r"^\w*Error: ", "", last)


def describe(inputs: Sequence[Any]) -> str:
    """``shape [1, 3] float32`` for each input tensor."""
    parts: List[str] = []
    for tensor in inputs:
        shape = getattr(tensor, "shape", None)
        if shape is None:
            parts.append(type(tensor).__name__)
            continue
        dtype = str(getattr(tensor, "dtype", "")).replace("torch.", "")
        parts.append("shape %s %s" % (list(shape), dtype))
    return ", ".join(parts) or "no inputs"


def refusal(exc: BaseException, inputs: Sequence[Any]) -> Optional[BadRequest]:
    """A 400 for a forward error caused by the inputs, or None when it is not one."""
    if not isinstance(exc, _CLIENT_ERRORS):
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
    if inputs and all(getattr(tensor, "numel", lambda: 1)() == 0 for tensor in inputs):
        return BadRequest("the request holds no values (%s)" % describe(inputs))
    return None
