"""Pattern: scripts that read the request's details from the context (AWS's tfs_utils.Context):
model_name / model_version / method from the custom attributes (None when not given),
custom_attributes, request_content_type, accept_header, content_length, rest_uri."""
import json


def handler(data, context):
    body = data.read()
    fields = {
        'fields': list(context._fields),
        'model_name': context.model_name,
        'model_version': context.model_version,
        'method': context.method,
        'custom_attributes': context.custom_attributes,
        'request_content_type': context.request_content_type,
        'accept_header': context.accept_header,
        'content_length': context.content_length,
        'rest_uri_tail': context.rest_uri.split('/v1/models/', 1)[1],
        'grpc_port': context.grpc_port,
        'read': len(body),
    }
    return json.dumps(fields), 'application/json'
