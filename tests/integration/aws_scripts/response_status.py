"""output_fn choosing the response status and content type through the context.

Pattern: MMS's ``context.set_response_status(code=200, phrase="", idx=0)`` and
``context.set_response_content_type(idx, value)`` (mms/context.py), the calls
sagemaker-inference itself makes on the same object (transformer.py ``handle_error`` and
``transform``). MMS sends the status a script set with the body the hooks returned
(mms/protocol/otf_message_handler.py, ``context.get_response_status(idx)``).
"""

import json

LIMIT = 100.0


def output_fn(prediction, accept, context):
    values = prediction.detach().cpu().numpy().tolist()
    if any(abs(value) > LIMIT for row in values for value in row):
        context.set_response_status(code=422, phrase="Prediction out of range")
        return json.dumps({"error": "prediction out of range", "limit": LIMIT})
    if accept == "text/plain":
        context.set_response_content_type(0, "text/plain")
        return "\n".join(" ".join(str(value) for value in row) for row in values)
    context.set_response_status(200)
    return json.dumps(values)
