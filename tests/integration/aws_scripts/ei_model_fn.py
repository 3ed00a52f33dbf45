"""model_fn as written for PyTorch Elastic Inference, with the default request hooks.

Pattern: using_pytorch.rst "Load a Model" (PyTorch EI 1.5.1): ``torch.jit.load(...,
map_location=torch.device('cpu'))`` and, only on torch 1.5.1, ``torcheia.jit.attach_eia(model,
0)``; then default input_fn / predict_fn / output_fn, which "make it easy to predict on
torch.Tensors" sent as NPY, the Python SDK's default for PyTorch ("Serve a PyTorch Model").
"""

import os

import torch


def model_fn(model_dir):
    model = torch.jit.load(os.path.join(model_dir, "model.pt"), map_location=torch.device("cpu"))
    if torch.__version__ == "1.5.1":
        import torcheia

        model = model.eval()
        # attach_eia() is introduced in PyTorch Elastic Inference 1.5.1
        model = torcheia.jit.attach_eia(model, 0)
    return model
