"""output_fn writing NPY by hand, as sagemaker_inference.encoder does.

Pattern: sagemaker_inference/encoder.py ``_array_to_npy`` (``buffer = BytesIO();
np.save(buffer, array_like); return buffer.getvalue()``), for the SageMaker Python SDK's
NumpyDeserializer (Accept ``application/x-npy``), with JSON otherwise.
"""

import json
from io import BytesIO

import numpy as np


def output_fn(prediction, accept):
    array = prediction.detach().cpu().numpy()
    if accept == "application/x-npy":
        buffer = BytesIO()
        np.save(buffer, array)
        return buffer.getvalue(), accept
    if accept == "application/json":
        return json.dumps(array.tolist()), accept
    raise ValueError(f"unsupported accept: {accept}")
