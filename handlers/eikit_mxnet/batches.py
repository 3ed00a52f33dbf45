"""Dynamic batching for MXNet's default hooks: requests' input NDArrays stacked along the
first dimension, the model's output NDArrays (or numpy arrays, or lists, tuples and dicts
of them) cut back into one answer per request (``eikit.stacking`` does the cutting)."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from eikit import stacking


def ndarray_key(mx: Any, data: Any) -> Optional[Tuple[Any, int]]:
    if isinstance(data, mx.nd.NDArray) and data.ndim >= 2:
        return ("mxnet", str(data.dtype), str(data.context), tuple(data.shape[1:])), int(
            data.shape[0]
        )
    return None


def stack(mx: Any, inputs: List[Any]) -> Any:
    if isinstance(inputs[0], mx.nd.NDArray):
        return mx.nd.concat(*inputs, dim=0)
    return stacking.stack_arrays(inputs)


def split(mx: Any, prediction: Any, counts: List[int]) -> Optional[List[Any]]:
    def rows(value: Any) -> Optional[int]:
        if isinstance(value, mx.nd.NDArray):
            return int(value.shape[0]) if value.ndim >= 1 else None
        return stacking.array_rows(value)

    return stacking.split_nested(prediction, counts, rows)
