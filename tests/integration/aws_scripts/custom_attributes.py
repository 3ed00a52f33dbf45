"""Custom attributes: read ``X-Amzn-SageMaker-Custom-Attributes`` and send one back.

Pattern: InvokeEndpoint's CustomAttributes (SageMaker Runtime API reference: "If the customer
wants the custom attribute returned, the model must set the custom attribute to be included
on the way back"), read through MMS's context (mms/context.py:
``get_request_header(idx, key)``, ``request_processor[idx].get_request_properties()``) and
returned with ``set_response_header(idx, key, value)``, which MMS sends as a response header.
"""

import json

import torch

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def input_fn(request_body, content_type, context):
    properties = context.request_processor[0].get_request_properties()
    data = json.loads(request_body)
    return {
        "rows": torch.tensor(data, dtype=torch.float32),
        "attributes": properties.get(ATTRIBUTES),
    }


def predict_fn(data, model, context):
    with torch.no_grad():
        return {"scores": model(data["rows"]), "attributes": data["attributes"]}


def output_fn(prediction, accept, context):
    attributes = context.get_request_header(0, ATTRIBUTES)
    if attributes is not None:
        context.set_response_header(0, ATTRIBUTES, "echo:" + attributes)
    context.set_response_header(0, "X-Model-Rows", str(len(prediction["scores"])))
    return json.dumps(
        {
            "scores": prediction["scores"].tolist(),
            "from_header": attributes,
            "from_properties": prediction["attributes"],
        }
    )
