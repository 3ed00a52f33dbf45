"""Pattern: SDK docs' image example (application/x-image bytes into an instance), here raw
float32 bytes (application/octet-stream) turned into one instance with numpy, as scripts
for numeric payloads do; b64 for a string signature would go the same way."""
import json

import numpy as np


def input_handler(data, context):
    if context.request_content_type in ('application/octet-stream', 'application/x-image'):
        values = np.frombuffer(data.read(), dtype=np.float32)
        return json.dumps({'instances': [values.tolist()]})
    raise ValueError('unsupported content type {}'.format(context.request_content_type))


def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode('utf-8'))
    return response.content, 'application/json'
