"""transform_fn with a trailing ``context``, NPY in and NPY out.

Pattern: transformer.py ``_run_handler_function`` passes the context to a transform_fn that
takes five parameters; NPY bodies arrive as ``bytes`` and are read and written as
sagemaker_inference's decoder.py / encoder.py do (``np.load(BytesIO(...))``,
``np.save(buffer, ...)``); the reply type comes from the returned tuple.
"""

import io

import numpy as np
import torch


def transform_fn(model, request_body, content_type, accept, context):
    if content_type != "application/x-npy":
        raise ValueError(f"expected application/x-npy, got {content_type}")
    array = np.load(io.BytesIO(request_body))
    with torch.no_grad():
        result = model(torch.from_numpy(array)).numpy()
    context.set_response_header(0, "X-Input-Shape", "x".join(str(n) for n in array.shape))
    buffer = io.BytesIO()
    np.save(buffer, result)
    return buffer.getvalue(), "application/x-npy"
