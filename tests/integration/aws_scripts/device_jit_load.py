"""The common device snippet: TorchScript loaded with ``map_location=device``, inputs moved
to the same device in input_fn.

Pattern: ``device = torch.device("cuda" if torch.cuda.is_available() else "cpu")`` and
``torch.jit.load(..., map_location=device)``, as DefaultPytorchInferenceHandler's own
default_model_fn and default_input_fn do (sagemaker-pytorch-inference-toolkit,
default_pytorch_inference_handler.py), and using_pytorch.rst's "Load a Model" advice to load
TorchScript with an explicit ``map_location``. Default predict_fn and output_fn.
"""

import json
import os

import torch

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_fn(model_dir):
    model = torch.jit.load(os.path.join(model_dir, "model.pt"), map_location=device)
    return model.to(device).eval()


def input_fn(request_body, request_content_type):
    if request_content_type == "application/json":
        data = json.loads(request_body)
        return torch.tensor(data, dtype=torch.float32).to(device)
    raise ValueError(f"Unsupported content type: {request_content_type}")
