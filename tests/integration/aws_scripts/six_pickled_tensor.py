"""input_fn loading a pickled tensor with ``six.BytesIO``: the documented example, verbatim.

Pattern: using_pytorch.rst "Process Model Input" (SageMaker Python SDK): "The example below
shows a custom input_fn for preparing pickled torch.Tensor" (``from six import BytesIO``,
``torch.load(BytesIO(request_body))`` for ``application/python-pickle``). ``six`` is a
dependency of sagemaker-inference, so AWS's PyTorch container always has it. Default
predict_fn and output_fn.
"""

import torch
from six import BytesIO


def input_fn(request_body, request_content_type):
    """An input_fn that loads a pickled tensor"""
    if request_content_type == "application/python-pickle":
        return torch.load(BytesIO(request_body))
    raise ValueError(f"unsupported content type {request_content_type}")
