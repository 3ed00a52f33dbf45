"""Pattern: AWS blog / SDK examples that parse TF Serving's answer with response.json() and
return their own JSON (a top-1 label per prediction), passing the JSON request through."""
import json


def input_handler(data, context):
    return data.read().decode('utf-8')


def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.text)
    predictions = response.json()['predictions']
    labels = [{'label': 'high' if max(p) > 10 else 'low', 'max': max(p)} for p in predictions]
    return json.dumps({'labels': labels}), 'application/json'
