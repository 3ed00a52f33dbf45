"""Pattern: the SageMaker Python SDK's TensorFlow Serving docs ("How to implement the
pre- and/or post-processing handler(s)"): several CSV rows turned into {"instances": ...}
with the csv module, predictions re-encoded as CSV in output_handler."""
import csv
import io
import json


def input_handler(data, context):
    if context.request_content_type == 'text/csv':
        reader = csv.reader(io.StringIO(data.read().decode('utf-8')))
        instances = [[float(value) for value in row] for row in reader if row]
        return json.dumps({'instances': instances})
    raise ValueError('unsupported content type {}'.format(context.request_content_type))


def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode('utf-8'))
    predictions = json.loads(response.content.decode('utf-8'))['predictions']
    if context.accept_header == 'text/csv':
        out = io.StringIO()
        writer = csv.writer(out, lineterminator='\n')
        for row in predictions:
            writer.writerow(row if isinstance(row, list) else [row])
        return out.getvalue(), 'text/csv'
    return json.dumps(predictions), 'application/json'
