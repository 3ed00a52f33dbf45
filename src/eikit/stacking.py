"""Stacking requests' inputs into one batch and splitting the prediction back, for numpy
arrays: ``ModelSession``'s default, which the PyTorch and MXNet runtimes extend to their
tensors. Imported in workers only (numpy).

Only inputs that carry a batch dimension stack: arrays of two or more dimensions, numbers,
with the same dtype and the same shape after the first dimension. A prediction splits when
it is such an array whose first dimension is the batch's rows (or a list, tuple or dict of
them); anything else runs request by request instead, so answers never mix.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

import numpy as np

Key = Tuple[Hashable, int]  # what stacked inputs must share, and the input's rows

_NUMERIC = "biufc"


def array_key(data: Any) -> Optional[Key]:
    if isinstance(data, np.ndarray) and data.ndim >= 2 and data.dtype.kind in _NUMERIC:
        return ("numpy", data.dtype.str, data.shape[1:]), int(data.shape[0])
    return None


def array_rows(value: Any) -> Optional[int]:
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return int(value.shape[0])
    return None


def cut(value: Any, start: int, stop: int) -> Any:
    return value[start:stop]


def stack_arrays(inputs: List[Any]) -> Any:
    return np.concatenate(inputs, axis=0)


def split_nested(
    prediction: Any,
    counts: List[int],
    rows: Callable[[Any], Optional[int]] = array_rows,
    part: Callable[[Any, int, int], Any] = cut,
) -> Optional[List[Any]]:
    """``prediction`` cut into ``counts`` rows each, or None where it cannot be: ``rows``
    tells an array's first dimension (None: not an array), ``part`` cuts one."""
    total = sum(counts)
    found = rows(prediction)
    if found is not None:
        if found != total:
            return None
        parts = []
        start = 0
        for count in counts:
            parts.append(part(prediction, start, start + count))
            start += count
        return parts
    if isinstance(prediction, (list, tuple)) and prediction:
        columns = [split_nested(item, counts, rows, part) for item in prediction]
        if any(column is None for column in columns):
            return None
        kind = tuple if isinstance(prediction, tuple) else list
        return [kind(column[i] for column in columns) for i in range(len(counts))]  # type: ignore[index]
    if isinstance(prediction, dict) and prediction:
        named: Dict[Any, List[Any]] = {}
        for name, item in prediction.items():
            column = split_nested(item, counts, rows, part)
            if column is None:
                return None
            named[name] = column
        return [{name: column[i] for name, column in named.items()} for i in range(len(counts))]
    return None
