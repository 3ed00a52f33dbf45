"""A Gluon export imported onto ``mx.eia()`` (EI), with input_fn and output_fn of its own.

Pattern: "Use EI with MXNet" Gluon: ``gluon.SymbolBlock.imports(symbol, ['data'], params,
ctx=mx.eia())``; an input_fn reading ``{"instances": [...]}`` and an output_fn answering
``{"predictions": [...]}`` with the accept type.
"""

import json
import os

import mxnet as mx


def model_fn(model_dir):
    ctx = mx.eia()
    net = mx.gluon.SymbolBlock.imports(
        os.path.join(model_dir, "linear-symbol.json"),
        ["data"],
        os.path.join(model_dir, "linear-0000.params"),
        ctx=ctx,
    )
    return net


def input_fn(request_body, request_content_type):
    if request_content_type == "application/json":
        instances = json.loads(request_body)["instances"]
        return mx.nd.array(instances, ctx=mx.cpu())
    raise ValueError("Unsupported content type: {}".format(request_content_type))


def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction.asnumpy().tolist()}), accept
