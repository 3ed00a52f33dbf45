"""Pattern: AWS's test/resources/examples/test4: code/lib/dummy_module importable (lib/ is
on the path) and no requirements.txt, so what it would install must not be there (AWS's
script checks Pillow, which eikit's test environment has for other reasons: the probe here
is the package handler_with_requirements installs)."""
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
    return json_dumps(body), context.accept_header


def json_dumps(value):
    import json
    return json.dumps(value)
