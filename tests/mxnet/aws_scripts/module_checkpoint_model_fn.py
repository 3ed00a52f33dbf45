"""model_fn loading a Module checkpoint by hand; the default input_fn, predict_fn, output_fn.

Pattern: sagemaker-python-sdk using_mxnet.rst "Load a Model" (MXNet Module API):
``mx.model.load_checkpoint``, ``mx.mod.Module(...)``, ``bind(for_training=False, ...)``,
``set_params``; the data shapes read from the ``model-shapes.json`` the SDK's ``save`` wrote.
"""

import json
import logging
import os

import mxnet as mx


def model_fn(model_dir):
    """Load the model from the model_dir directory."""
    logging.info("Invoking user-defined model_fn")
    with open(os.path.join(model_dir, "model-shapes.json"), "r") as f:
        signature = json.load(f)
    data_names = [s["name"] for s in signature]
    data_shapes = [(s["name"], tuple(s["shape"])) for s in signature]
    sym, arg_params, aux_params = mx.model.load_checkpoint(os.path.join(model_dir, "model"), 0)
    mod = mx.mod.Module(symbol=sym, context=mx.cpu(), data_names=data_names, label_names=None)
    mod.bind(for_training=False, data_shapes=data_shapes)
    mod.set_params(arg_params, aux_params, allow_missing=True)
    return mod
