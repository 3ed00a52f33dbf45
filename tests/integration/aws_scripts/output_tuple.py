"""output_fn returning ``(body, content_type)``.

Pattern: sagemaker-inference's default_output_fn returns
``encoder.encode(prediction, content_type), content_type`` and transformer.py takes a tuple's
second item as the response type ("handles tuple for backwards compatibility"); AWS's
transform_fn test scripts return ``response_body, content_type`` the same way.
"""

import json


def output_fn(prediction, accept):
    rows = prediction.tolist()
    if accept == "text/csv":
        return "\n".join(",".join(str(value) for value in row) for row in rows) + "\n", "text/csv"
    return json.dumps({"predictions": rows}), "application/vnd.example.predictions+json"
