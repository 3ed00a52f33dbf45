"""input_fn taking the model (the signature the SageMaker Python SDK documented first).

Pattern: sagemaker-python-sdk README at a6b26d6 "Model serving": ``input_fn(request_body,
request_content_type, model)``, kept working by AWS's MXNetModuleTransformer; it returns an
``NDArrayIter`` sized to the Module's batch, which the default predict_fn runs with
``Module.predict``.
"""

import json

import mxnet as mx


def input_fn(request_body, request_content_type, model):
    if request_content_type != "application/json":
        raise ValueError("only JSON")
    data = mx.nd.array(json.loads(request_body))
    batch_size = model.data_shapes[0][1][0]
    return mx.io.NDArrayIter(data, batch_size=batch_size, last_batch_handle="pad")
