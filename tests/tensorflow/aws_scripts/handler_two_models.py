"""Pattern: a handler that queries two of the endpoint's models (several SavedModels in one
model.tar.gz, AWS's multi-model layout) by building each model's URI from context.rest_uri."""
import json

import requests


def handler(data, context):
    body = data.read().decode('utf-8')
    base = context.rest_uri.split('/v1/models/')[0]
    answers = {}
    for name in ('half_plus_three', 'scaled'):
        response = requests.post('{}/v1/models/{}:predict'.format(base, name), data=body)
        if response.status_code != 200:
            raise ValueError(response.content.decode('utf-8'))
        answers[name] = response.json()['predictions']
    return json.dumps(answers), 'application/json'
