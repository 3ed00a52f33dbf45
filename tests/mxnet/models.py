"""The linear model y = [x0, x1 + x2 + x3 + 0.5] in every form the MXNet runtime takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mxnet as mx

from tests.frameworks import BIAS, WEIGHT, mxnet_linear_module, save_mxnet_linear

__all__ = ["gluon_dense", "mxnet_linear_module", "save_gluon_linear", "save_mxnet_linear"]


def gluon_dense(hybridize: bool = True) -> Any:
    net = mx.gluon.nn.Dense(2, in_units=4)
    net.initialize(ctx=mx.cpu())
    net.weight.set_data(mx.nd.array(WEIGHT))
    net.bias.set_data(mx.nd.array(BIAS))
    if hybridize:
        net.hybridize()
    return net


def save_gluon_linear(model_dir: Path, name: str = "linear") -> None:
    """A Gluon export: NAME-symbol.json and NAME-0000.params."""
    net = gluon_dense()
    net(mx.nd.zeros((1, 4)))
    net.export(str(model_dir / name), 0)
