"""Pattern: AWS's test/resources/examples/test3: code/requirements.txt installs a package
before the script is imported (here a small local wheel, eikit_tf_req_probe); no code/lib."""
import requests

import eikit_tf_req_probe


def handler(data, context):
    response = requests.post(context.rest_uri, data=data.read().decode('utf-8'))
    if response.status_code != 200:
        raise ValueError(response.content.decode('utf-8'))
    predictions = response.json()['predictions']
    answer = {'predictions': predictions, 'probe': eikit_tf_req_probe.ANSWER}
    import json
    return json.dumps(answer), 'application/json'
