"""Pattern: handlers that check the model is AVAILABLE on TF Serving's model status API
(GET /v1/models/<name>, as AWS's tfs_utils.wait_for_model polls it) before predicting."""
import json

import requests


def handler(data, context):
    status_uri = context.rest_uri.rsplit(':', 1)[0]
    status = requests.get(status_uri).json()
    states = [v['state'] for v in status['model_version_status']]
    if not all(state == 'AVAILABLE' for state in states):
        raise ValueError('model not available: {}'.format(status))
    response = requests.post(context.rest_uri, data=data.read())
    if response.status_code != 200:
        raise ValueError(response.content.decode('utf-8'))
    answer = response.json()
    answer['versions'] = [v['version'] for v in status['model_version_status']]
    return json.dumps(answer), 'application/json'
