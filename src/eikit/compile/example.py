"""The example input ``eikit compile`` traces with and checks against.

Either a request body saved to a file (``.json``, ``.npy``, ``.npz``, ``.csv``: the runtime
decodes it as the server decodes a request, so the compiled graph takes exactly what the
default ``input_fn`` produces), or shapes (``--shape 1x3x224x224``, one per input, with
``--dtype``) filled with seeded random values. The first dimension is the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from eikit import codecs
from eikit.errors import ConfigurationError

SUFFIXES = {
    ".json": codecs.JSON,
    ".jsonl": codecs.JSONLINES,
    ".csv": codecs.CSV,
    ".npy": codecs.NPY,
    ".npz": codecs.NPZ,
}


@dataclass(frozen=True)
class Example:
    body: Optional[bytes] = None
    content_type: Optional[str] = None
    arrays: Optional[List[np.ndarray]] = None

    def describe(self) -> str:
        if self.arrays is not None:
            return "shapes %s" % ", ".join(
                "%s %s" % ("x".join(map(str, a.shape)), a.dtype) for a in self.arrays
            )
        return "a %s request of %d bytes" % (self.content_type, len(self.body or b""))


def from_file(path: Path, content_type: Optional[str] = None) -> Example:
    if not path.is_file():
        raise ConfigurationError("--example %s: no such file" % path)
    kind = content_type or SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigurationError(
            "--example %s: give a .json, .jsonl, .csv, .npy or .npz request body, or "
            "--content-type" % path
        )
    return Example(body=path.read_bytes(), content_type=kind)


def parse_shape(text: str) -> List[int]:
    try:
        dims = [int(part) for part in text.lower().replace(",", "x").split("x") if part]
    except ValueError:
        raise ConfigurationError(
            "--shape %r: dimensions joined by x, e.g. 1x3x224x224" % text
        ) from None
    if not dims or min(dims) < 1:
        raise ConfigurationError("--shape %r: positive dimensions, batch first" % text)
    return dims


def from_shapes(shapes: Sequence[str], dtypes: Sequence[str], seed: int = 0) -> Example:
    rng = np.random.default_rng(seed)
    arrays = []
    for index, text in enumerate(shapes):
        dtype_name = dtypes[index] if index < len(dtypes) else (dtypes[-1] if dtypes else "float32")
        try:
            dtype = np.dtype(dtype_name)
        except TypeError:
            raise ConfigurationError("--dtype %r is not a numpy dtype" % dtype_name) from None
        shape = parse_shape(text)
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind in "iu":
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(np.ones(shape, dtype=dtype))
        else:
            raise ConfigurationError("--dtype %s: numbers only" % dtype_name)
    return Example(arrays=arrays)
