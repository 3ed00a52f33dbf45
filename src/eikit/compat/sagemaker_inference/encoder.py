"""``encode(array_like, content_type)``: to JSON (str), CSV (str) or NPY (bytes), as
sagemaker-inference's encoder writes them."""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Dict, Union

import numpy as np
from sagemaker_inference import content_types, errors


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return json.JSONEncoder().default(value)


def _array_to_json(array_like: Any) -> str:
    return json.dumps(array_like, default=_default)


def _array_to_npy(array_like: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array_like)
    return buffer.getvalue()


def _array_to_csv(array_like: Any) -> str:
    stream = io.StringIO()
    np.savetxt(stream, array_like, delimiter=",", fmt="%s")
    return stream.getvalue()


_ENCODERS: Dict[str, Callable[[Any], Union[str, bytes]]] = {
    content_types.NPY: _array_to_npy,
    content_types.CSV: _array_to_csv,
    content_types.JSON: _array_to_json,
}


def encode(array_like: Any, content_type: str) -> Union[str, bytes]:
    try:
        encoder = _ENCODERS[content_type]
    except KeyError:
        raise errors.UnsupportedFormatError(content_type) from None
    return encoder(array_like)
