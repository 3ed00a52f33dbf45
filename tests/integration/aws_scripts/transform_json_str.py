"""transform_fn taking the JSON body and returning a ``str``.

Pattern: transform_fn(model, request_body, content_type, accept) replacing the three request
hooks (sagemaker-inference-toolkit README, "Implementation Steps"; transformer.py calls
``transform_fn(model, input_data, content_type, accept)`` with ``str`` for exactly
``application/json`` and ``text/csv``, ``bytes`` otherwise). A plain string return value
makes the response type ``accept`` (transformer.py: ``response_content_type = accept``).
"""

import json

import torch


def transform_fn(model, request_body, content_type, accept):
    body_type = type(request_body).__name__
    data = json.loads(request_body)
    with torch.no_grad():
        prediction = model(torch.tensor(data["instances"], dtype=torch.float32))
    return json.dumps({"predictions": prediction.tolist(), "body_type": body_type})
