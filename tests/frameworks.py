"""Each framework's stand-in for the same model, for the suites every runtime must pass.

The model is y = [x0, x1 + x2 + x3 + 0.5] on 4 features, built in code in the format the
runtime's default ``model_fn`` loads. Its requests and answers are in the framework's own
JSON convention (PyTorch's bare arrays, TF Serving's ``instances``/``predictions``), so
one suite checks the hosting contract for every runtime without knowing the framework.

A framework is offered to a suite only where its module imports: each test environment
(``noxfile.py``) installs one framework, and runs the suites for that one.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List

Rows = List[List[float]]


def expected(rows: Rows) -> Rows:
    return [[r[0], r[1] + r[2] + r[3] + 0.5] for r in rows]


WEIGHT = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]  # (out, in)
BIAS = [0.0, 0.5]


@dataclass(frozen=True)
class Framework:
    name: str  # EIKIT_FRAMEWORK
    module: str  # what must import for the framework to be offered
    save_model: Callable[[Path], None]  # the linear model, into a model directory
    request: Callable[[Rows], bytes]  # a JSON request for these rows
    answer: Callable[[Any], Rows]  # the rows out of a parsed JSON answer

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def save_torch_linear(model_dir: Path) -> None:
    import torch

    layer = torch.nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(WEIGHT))
        layer.bias.copy_(torch.tensor(BIAS))
    torch.jit.script(layer.eval()).save(str(model_dir / "model.pt"))


def torch_linear_archive(folder: Path) -> bytes:
    """The PyTorch linear model as an EI user's model.tar.gz (model.pt, code/inference.py),
    built in ``folder``."""
    from eikit.cloud.package import package_model

    model_dir, code = folder / "model", folder / "code"
    model_dir.mkdir(parents=True)
    code.mkdir()
    save_torch_linear(model_dir)
    (code / "inference.py").write_text("# the user's script, kept as it is\n")
    package_model(model_dir, code, folder / "model.tar.gz")
    return (folder / "model.tar.gz").read_bytes()


def mxnet_linear_module(context: Any = None) -> Any:
    """The linear model as an MXNet Module bound for inference with batch size 1."""
    import mxnet as mx

    data = mx.sym.var("data")
    symbol = mx.sym.FullyConnected(data, num_hidden=2, name="fc")
    module = mx.mod.Module(
        symbol, data_names=["data"], label_names=None, context=context or mx.cpu()
    )
    module.bind(data_shapes=[("data", (1, 4))], for_training=False)
    module.set_params({"fc_weight": mx.nd.array(WEIGHT), "fc_bias": mx.nd.array(BIAS)}, {})
    return module


def save_mxnet_linear(model_dir: Path) -> None:
    """A Module checkpoint as AWS's MXNet toolkit loads it: model-symbol.json,
    model-0000.params and model-shapes.json."""
    mxnet_linear_module().save_checkpoint(str(model_dir / "model"), 0)
    (model_dir / "model-shapes.json").write_text(json.dumps([{"name": "data", "shape": [1, 4]}]))


def save_tf_linear(model_dir: Path) -> None:
    """The linear model as a SavedModel under ``model_dir/1/`` (TF Serving's version
    layout), its ``serving_default`` signature taking float32 [None, 4]."""
    import tensorflow as tf

    weight = tf.constant(WEIGHT, dtype=tf.float32)
    bias = tf.constant(BIAS, dtype=tf.float32)

    class Linear(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: Any) -> Any:
            return {"y": tf.matmul(x, weight, transpose_b=True) + bias}

    module = Linear()
    tf.saved_model.save(module, str(model_dir / "1"), signatures={"serving_default": module.serve})


FRAMEWORKS: Dict[str, Framework] = {
    "pytorch": Framework(
        "pytorch",
        "torch",
        save_torch_linear,
        lambda rows: json.dumps(rows).encode(),
        lambda answer: answer,
    ),
    "mxnet": Framework(
        "mxnet",
        "mxnet",
        save_mxnet_linear,
        lambda rows: json.dumps(rows).encode(),
        lambda answer: answer,
    ),
    "tensorflow": Framework(
        "tensorflow",
        "tensorflow",
        save_tf_linear,
        lambda rows: json.dumps({"instances": rows}).encode(),
        lambda answer: answer["predictions"],
    ),
}


def available() -> List[Framework]:
    return [framework for framework in FRAMEWORKS.values() if framework.available()]
