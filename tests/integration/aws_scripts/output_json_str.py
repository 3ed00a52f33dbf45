"""output_fn returning a plain ``str`` made by ``json.dumps``.

Pattern: the most common hand-written output_fn (``return json.dumps(result)``); with no
content type returned, sagemaker-inference answers with the request's ``accept``
(transformer.py: ``response_content_type = accept``), which is
SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT when Accept is missing or ``*/*``.
"""

import json


def output_fn(prediction, response_content_type):
    result = prediction.cpu().numpy().tolist()
    return json.dumps({"result": result, "accept": response_content_type})
