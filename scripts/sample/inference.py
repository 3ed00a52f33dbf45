"""The sample's inference script: the same hooks a SageMaker PyTorch script defines.

model_fn is left to eikit (it loads model.pt as TorchScript on the best device); input_fn
and output_fn give the endpoint a friendly JSON shape.
"""

import json

import torch

LABELS = ["setosa", "versicolor", "virginica"]


def input_fn(input_data, content_type, context):
    if not content_type.startswith("application/json"):
        from eikit import InferenceError

        raise InferenceError('send JSON: {"inputs": [[4 numbers], ...]}', status=415)
    rows = json.loads(input_data)["inputs"]
    return torch.tensor(rows, dtype=torch.float32)


def output_fn(prediction, accept, context):
    rows = prediction.tolist()
    answer = {
        "predictions": [
            {"label": LABELS[max(range(3), key=row.__getitem__)], "probabilities": row}
            for row in rows
        ],
        "served_on": context.device,
    }
    return json.dumps(answer), "application/json"
