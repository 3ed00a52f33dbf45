"""Dynamic batching for PyTorch's default hooks: requests' input tensors stacked along the
first dimension, the model's output tensors (or numpy arrays, or lists, tuples and dicts of
them) cut back into one answer per request (``eikit.stacking`` does the cutting)."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from eikit import stacking


def tensor_key(data: Any) -> Optional[Tuple[Any, int]]:
    import torch

    if isinstance(data, torch.Tensor) and data.dim() >= 2 and not data.is_complex():
        return ("torch", str(data.dtype), str(data.device), tuple(data.shape[1:])), int(
            data.shape[0]
        )
    return None


def stack(inputs: List[Any]) -> Any:
    import torch

    if isinstance(inputs[0], torch.Tensor):
        return torch.cat(inputs, dim=0)
    return stacking.stack_arrays(inputs)


def rows(value: Any) -> Optional[int]:
    import torch

    if isinstance(value, torch.Tensor):
        return int(value.shape[0]) if value.dim() >= 1 else None
    return stacking.array_rows(value)


def split(prediction: Any, counts: List[int]) -> Optional[List[Any]]:
    return stacking.split_nested(prediction, counts, rows)
