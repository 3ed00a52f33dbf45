"""transform_fn decoding raw image bytes (``application/x-image``, ``image/png``) with PIL.

Pattern: AWS's own transform_fn test scripts in sagemaker-pytorch-inference-toolkit
(test/resources/resnet18/default_model/code/resnet18.py and
test/resources/mme/resnet18/code/inference.py): ``Image.open(io.BytesIO(payload))``, forward,
then ``return json.dumps(result.tolist()), content_type``. Image bodies reach transform_fn as
``bytes`` (only application/json and text/csv are decoded to ``str``).
"""

import io
import json

import numpy as np
import torch
from PIL import Image

IMAGE_TYPES = ("application/x-image", "image/png")


def transform_fn(model, payload, request_content_type, response_content_type):
    if request_content_type not in IMAGE_TYPES:
        raise ValueError(f"Content type must be an image. Provided: {request_content_type}")
    decoded = Image.open(io.BytesIO(payload)).convert("L")
    pixels = np.asarray(decoded, dtype=np.float32)  # one image row per model input row
    batch = torch.from_numpy(pixels.copy())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        result = model.forward(batch.to(device))
    response_body = json.dumps(result.cpu().detach().numpy().tolist())
    return response_body, response_content_type
