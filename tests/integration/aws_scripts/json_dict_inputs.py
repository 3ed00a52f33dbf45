"""User input_fn parsing a JSON object ``{"inputs": [[...]]}`` into a tensor.

Pattern: ``json.loads(request_body)`` on an ``application/json`` body (a ``str`` on AWS's
containers), picking a field out of the request object, as in the SageMaker Hugging Face /
PyTorch examples and using_pytorch.rst's "Process Model Input" (``input_fn(request_body,
request_content_type)``). Default predict_fn and output_fn.
"""

import json

import torch


def input_fn(request_body, request_content_type):
    if request_content_type == "application/json":
        data = json.loads(request_body)
        return torch.tensor(data["inputs"], dtype=torch.float32)
    raise ValueError(f"Unsupported content type: {request_content_type}")
