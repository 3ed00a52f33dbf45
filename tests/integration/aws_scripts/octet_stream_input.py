"""User input_fn for ``application/octet-stream``: raw float32 bytes.

Pattern: using_pytorch.rst "Process Model Input" ("``request_body`` is a byte buffer"):
anything but application/json and text/csv reaches input_fn as ``bytes`` (transformer.py),
here read with ``np.frombuffer``. Default predict_fn; output_fn returns CSV text.
"""

import numpy as np
import torch


def input_fn(request_body, request_content_type):
    if request_content_type != "application/octet-stream":
        raise ValueError(f"unsupported content type {request_content_type}")
    array = np.frombuffer(request_body, dtype="<f4").reshape(-1, 4)
    return torch.from_numpy(array.copy())


def output_fn(prediction, accept):
    rows = prediction.cpu().numpy().tolist()
    return "".join(f"{a},{b}\n" for a, b in rows), "text/csv"
