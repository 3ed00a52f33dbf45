"""predict_fn forwarding a ``namedtuple('Batch', ['data'])`` through the Module.

Pattern: MXNet's "Predict with pre-trained models" tutorial, used in many SageMaker MXNet
scripts: ``Batch = namedtuple('Batch', ['data'])``, ``mod.forward(Batch([data]))``,
``mod.get_outputs()[0].asnumpy()``; an output_fn with CSV through sagemaker_inference.
"""

from collections import namedtuple

import numpy as np
from sagemaker_inference import encoder

Batch = namedtuple("Batch", ["data"])


def predict_fn(input_object, model):
    model.forward(Batch([input_object]))
    prob = model.get_outputs()[0].asnumpy()
    return np.squeeze(prob)


def output_fn(prediction, content_type):
    return encoder.encode(prediction.tolist(), content_type)
