"""Pattern: handler scripts that pick the TF Serving method themselves by rewriting the
URI's ':predict' (the docs' classify/regress examples), here sending tf.Examples to
':regress' whatever tfs-method says."""
import json

import requests


def handler(data, context):
    rows = json.loads(data.read().decode('utf-8'))
    body = {'signature_name': 'tensorflow/serving/regress',
            'examples': [{'x': float(v)} for v in rows]}
    uri = context.rest_uri.replace(':predict', ':regress')
    response = requests.post(uri, data=json.dumps(body))
    if response.status_code != 200:
        raise ValueError(response.content.decode('utf-8'))
    return response.content, 'application/json'
