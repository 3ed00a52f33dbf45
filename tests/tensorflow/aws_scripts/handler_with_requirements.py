"""Pattern: AWS's test/resources/examples/test3 and test5: code/requirements.txt installs a
package before the script is imported (here a small local wheel, eikit_tf_req_probe), and
code/lib is on the path as well."""
import requests

import dummy_module
import eikit_tf_req_probe


def handler(data, context):
    response = requests.post(context.rest_uri, data=data.read().decode('utf-8'))
    if response.status_code != 200:
        raise ValueError(response.content.decode('utf-8'))
    predictions = response.json()['predictions']
    answer = {'predictions': predictions, 'probe': eikit_tf_req_probe.ANSWER,
              'lib': dummy_module.__version__}
    import json
    return json.dumps(answer), 'application/json'
