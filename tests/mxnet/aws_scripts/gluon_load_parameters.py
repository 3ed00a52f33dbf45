"""A Gluon network defined in the script, its weights from ``model.params``; default hooks.

Pattern: using_mxnet.rst "Load a Model" (Gluon API): build the network in model_fn, then
``net.load_parameters(os.path.join(model_dir, 'model.params'), ctx=mx.cpu())``; the default
input_fn (JSON or NPY to an NDArray), predict_fn (``block(data)``) and output_fn.
"""

import os

import mxnet as mx
from mxnet import gluon


def model_fn(model_dir):
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Dense(2, in_units=4))
    net.load_parameters(os.path.join(model_dir, "model.params"), ctx=mx.cpu())
    net.hybridize()
    return net
