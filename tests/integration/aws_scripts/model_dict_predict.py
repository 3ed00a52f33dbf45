"""model_fn returning a dict of objects; predict_fn returning a dict of tensors to the
default output_fn.

Pattern: ``model_fn`` returning ``{'model': model, 'tokenizer': tokenizer}`` and
``predict_fn(input_data, model_dict)`` popping ``'inputs'`` from the parsed JSON, as in the
user scripts on AWS re:Post (e.g. "how to serve a pretrained model from hugging face in
sagemaker without custom script"). AWS's default_output_fn encodes a non-tensor
prediction with sagemaker_inference/encoder.py (``json.dumps(..., default=tolist)``).
"""

import json
import os

import torch

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_fn(model_dir):
    model = torch.jit.load(os.path.join(model_dir, "model.pt"), map_location=device).eval()
    return {"model": model, "offset": 10.0}


def input_fn(request_body, request_content_type):
    return json.loads(request_body)


def predict_fn(input_data, model_dict):
    inputs = torch.tensor(input_data.pop("inputs"), dtype=torch.float32).to(device)
    with torch.no_grad():
        scores = model_dict["model"](inputs)
    return {"scores": scores, "shifted": scores + model_dict["offset"]}
