"""input_fn rejecting a bad request with a plain ``ValueError``.

Pattern: using_pytorch.rst "Process Model Input" ("Handle other content-types here or raise an
Exception"), and every AWS example's ``raise ValueError("... not supported by script!")``.
sagemaker-inference turns any exception into a 500 (transformer.py ``transform``:
``GenericInferenceToolkitError(http_client.INTERNAL_SERVER_ERROR, str(e))``).
"""

import json

import torch


def input_fn(request_body, request_content_type):
    if request_content_type != "application/json":
        raise ValueError(f"{request_content_type} not supported by script!")
    data = json.loads(request_body)
    if "instances" not in data:
        raise ValueError("request has no 'instances'")
    return torch.tensor(data["instances"], dtype=torch.float32)
