"""User input_fn for ``application/x-npy`` bytes: ``np.load(io.BytesIO(...))`` then
``torch.from_numpy``.

Pattern: the SageMaker Python SDK's PyTorch predictor sends NPY by default (NumpySerializer,
``application/x-npy``; using_pytorch.rst "Serve a PyTorch Model"); the body reaches input_fn
as ``bytes``, decoded as sagemaker_inference/decoder.py ``_npy_to_numpy`` does
(``np.load(BytesIO(npy_array))``). Default predict_fn and output_fn.
"""

import io

import numpy as np
import torch


def input_fn(input_data, content_type):
    if content_type != "application/x-npy":
        raise ValueError(f"expected application/x-npy, got {content_type}")
    if not isinstance(input_data, bytes):
        raise TypeError(f"NPY bodies arrive as bytes, got {type(input_data).__name__}")
    array = np.load(io.BytesIO(input_data))
    return torch.from_numpy(array)
