"""``decode(obj, content_type)``: JSON, CSV or NPY to a numpy array, as sagemaker-inference's
decoder returns them (CSV through ``numpy.genfromtxt`` with ``dtype=None``: one row is 1-D,
the cells decide the dtype)."""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Dict, Union

import numpy as np
from sagemaker_inference import content_types, errors

from eikit.npyfile import load_npy

Body = Union[bytes, bytearray, memoryview, str]


def _text(obj: Body) -> str:
    return obj if isinstance(obj, str) else bytes(obj).decode("utf-8")


def _json_to_numpy(obj: Body, dtype: Any = None) -> np.ndarray:
    return np.array(json.loads(_text(obj)), dtype=dtype)


def _csv_to_numpy(obj: Body, dtype: Any = None) -> np.ndarray:
    return np.genfromtxt(io.StringIO(_text(obj)), dtype=dtype, delimiter=",")


def _npy_to_numpy(obj: Body) -> np.ndarray:
    data = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
    return load_npy(data, len(data) + 1)  # never unpickled; declared sizes checked


_DECODERS: Dict[str, Callable[[Body], np.ndarray]] = {
    content_types.NPY: _npy_to_numpy,
    content_types.CSV: _csv_to_numpy,
    content_types.JSON: _json_to_numpy,
}


def decode(obj: Body, content_type: str) -> np.ndarray:
    try:
        decoder = _DECODERS[content_type]
    except KeyError:
        raise errors.UnsupportedFormatError(content_type) from None
    return decoder(obj)
