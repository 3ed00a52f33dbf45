"""A client error raised the way sagemaker-inference's transformer answers it: an exception
derived from ``errors.BaseInferenceToolkitError`` is answered with its ``status_code``
(transformer.py, ``handle_error``); any other exception is a 500.

Pattern: the error classes of aws/sagemaker-inference-toolkit ``src/sagemaker_inference/
errors.py`` ("meant to be extended from so that customers may handle errors within
inference servers").
"""

import json

import torch
from sagemaker_inference import errors


class MissingInputs(errors.BaseInferenceToolkitError):
    def __init__(self):
        super(MissingInputs, self).__init__(422, "the request has no 'inputs'", "Unprocessable")


def input_fn(input_data, content_type):
    data = json.loads(input_data)
    if "inputs" not in data:
        raise MissingInputs()
    if not data["inputs"]:
        raise errors.GenericInferenceToolkitError(400, "'inputs' is empty")
    return torch.tensor(data["inputs"], dtype=torch.float32)
