"""Default input_fn, user predict_fn.

Pattern: the overridden ``predict_fn(input_data, model)`` of the SageMaker Python SDK's
"Use PyTorch with the SageMaker Python SDK" page (doc/frameworks/pytorch/using_pytorch.rst,
"Get Predictions from a PyTorch Model"): "If you use the default input_fn, this will be a
torch.Tensor". The default input_fn is DefaultPytorchInferenceHandler.default_input_fn
(sagemaker-pytorch-inference-toolkit), which returns ``torch.FloatTensor`` (JSON, CSV) or
``torch.from_numpy`` (NPY) on the device.
"""

import torch


def predict_fn(input_data, model):
    if not isinstance(input_data, torch.Tensor):
        raise TypeError(
            "expected a torch.Tensor from the default input_fn, got %r" % type(input_data)
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    model.eval()
    with torch.no_grad():
        return model(input_data.to(device))
