"""Client errors raised with sagemaker_inference's errors, as AWS's transformer answers them.

Pattern: ``errors.GenericInferenceToolkitError(http_client.UNPROCESSABLE_ENTITY, message)``
from input_fn for a request the model cannot use; the default predict_fn and output_fn.
"""

import json
from http import client as http_client

import mxnet as mx
from sagemaker_inference import errors


def input_fn(input_data, content_type):
    body = json.loads(input_data)
    if "inputs" not in body:
        raise errors.GenericInferenceToolkitError(
            http_client.UNPROCESSABLE_ENTITY, "the request has no 'inputs'"
        )
    return mx.nd.array(body["inputs"])
