"""model_fn written for Elastic Inference: a Module bound to ``mx.eia()``; default hooks.

Pattern: SageMaker Developer Guide "Use EI with MXNet" / using_mxnet.rst "Elastic
Inference": the checkpoint loaded and bound with ``context=mx.eia()``; inputs from the
default input_fn stay on ``mx.cpu()``. Served unchanged on a host without EI.
"""

import os

import mxnet as mx


def model_fn(model_dir):
    ctx = mx.eia()
    sym, arg_params, aux_params = mx.model.load_checkpoint(os.path.join(model_dir, "model"), 0)
    mod = mx.mod.Module(symbol=sym, context=ctx, label_names=None)
    mod.bind(for_training=False, data_shapes=[("data", (1, 4))], label_shapes=mod._label_shapes)
    mod.set_params(arg_params, aux_params, allow_missing=True)
    return mod
