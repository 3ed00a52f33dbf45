"""Pattern: batch transform scripts taking application/jsonlines (one JSON record a line,
SplitType=Line) and answering one JSON line per prediction."""
import json


def input_handler(data, context):
    lines = data.read().decode('utf-8').splitlines()
    return json.dumps({'instances': [json.loads(line) for line in lines if line.strip()]})


def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode('utf-8'))
    predictions = response.json()['predictions']
    return '\n'.join(json.dumps(p) for p in predictions) + '\n', 'application/jsonlines'
