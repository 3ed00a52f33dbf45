"""Pattern: AWS's test/resources/examples/test5: code/lib holds dummy_module and
code/requirements.txt is there too. AWS's container loads modules from lib/ and ignores
requirements.txt (network-isolated endpoints vendor their packages into lib/), so the package
it names must not be installed (AWS's script checks Pillow; the probe here is the local wheel
eikit_tf_req_probe)."""
import requests

import dummy_module  # for testing requirements.txt install and pythonpath


def handler(data, context):
    print(dummy_module.__version__)
    try:
        import eikit_tf_req_probe  # noqa: F401
        raise Exception('eikit_tf_req_probe should not be installed')
    except ImportError:
        pass
    response = requests.post(context.rest_uri, data=data.read().decode('utf-8'))
    if response.status_code != 200:
        raise ValueError(response.content.decode('utf-8'))
    body = response.json()
    body['dummy_module'] = dummy_module.__version__
    import json
    return json.dumps(body), context.accept_header
