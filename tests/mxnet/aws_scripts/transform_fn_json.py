"""transform_fn on a Gluon network, as in the SageMaker MXNet MNIST example.

Pattern: amazon-sagemaker-examples mxnet_gluon_mnist/mnist.py and using_mxnet.rst
"transform_fn": ``json.loads(data)``, ``mx.nd.array``, ``net(nda)``, the answer as
``(json.dumps(list), output_content_type)``.
"""

import json
import os

import mxnet as mx
from mxnet import gluon


def model_fn(model_dir):
    net = gluon.nn.Dense(2, in_units=4)
    net.load_parameters(os.path.join(model_dir, "model.params"), ctx=mx.cpu())
    return net


def transform_fn(net, data, input_content_type, output_content_type):
    """Transform a request using the Gluon model. Called once per request."""
    # we can use content types to vary input/output handling, but
    # here we just assume json for both
    parsed = json.loads(data)
    nda = mx.nd.array(parsed)
    output = net(nda)
    prediction = mx.nd.argmax(output, axis=1)
    response_body = json.dumps({"scores": output.asnumpy().tolist(),
                                "classes": prediction.asnumpy().tolist()})
    return response_body, output_content_type
