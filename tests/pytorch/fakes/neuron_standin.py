"""What the stand-in ``torch_neuron`` and ``torch_neuronx`` share.

``trace(model, example_inputs, **kwargs)`` records its arguments (in ``calls``, and as a
JSON line in ``$EIKIT_STANDIN_RECORD/trace.jsonl`` when that folder is set, for processes a
test starts) and returns a real ``torch.jit.trace`` of the model: the artifact saves, loads
and predicts like the original. Like a compiled graph, it refuses input shapes other than
those it was traced with (one tensor in and out; other signatures are not checked).
``EIKIT_STANDIN_PERTURB=<x>`` adds ``x`` to every output of the traced graph (a compiler
that answers wrongly). On import, the module writes the process's ``NEURON_RT_*``
environment to ``$EIKIT_STANDIN_RECORD/import-<pid>.json``: what a worker pinned to its
NeuronCore saw. Nothing here imitates Inferentia.
"""

import json
import os
import warnings
from typing import Any, Dict, List

import torch

calls: List[Dict[str, Any]] = []


def record_import(module: str) -> None:
    folder = os.environ.get("EIKIT_STANDIN_RECORD")
    if not folder:
        return
    seen = {k: v for k, v in os.environ.items() if k.startswith("NEURON_RT_")}
    with open(os.path.join(folder, "import-%d.json" % os.getpid()), "w") as out:
        json.dump({"module": module, "pid": os.getpid(), "env": seen}, out)


class _FixedShape(torch.nn.Module):
    """A compiled graph takes the shapes it was traced with, and no others."""

    def __init__(self, inner: Any, shape: List[int]) -> None:
        super().__init__()
        self.inner = inner
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape) != self.shape:
            raise RuntimeError(
                "neuron stand-in: the graph was compiled for input shape "
                + str(self.shape)
                + ", got "
                + str(list(x.shape))
            )
        return self.inner(x)


class _Perturbed(torch.nn.Module):
    def __init__(self, model: Any, delta: float) -> None:
        super().__init__()
        self.model = model
        self.delta = delta

    def forward(self, *inputs: Any) -> Any:
        return self.model(*inputs) + self.delta


def trace(module: str, model: Any, example_inputs: Any, **kwargs: Any) -> Any:
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    call = {
        "module": module,
        "shapes": [list(t.shape) for t in inputs],
        "dtypes": [str(t.dtype).replace("torch.", "") for t in inputs],
        "kwargs": {k: v for k, v in kwargs.items()},
    }
    calls.append(call)
    folder = os.environ.get("EIKIT_STANDIN_RECORD")
    if folder:
        with open(os.path.join(folder, "trace.jsonl"), "a") as out:
            out.write(json.dumps(call) + "\n")
    delta = float(os.environ.get("EIKIT_STANDIN_PERTURB", "0") or 0)
    if delta:
        model = _Perturbed(model, delta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing a ScriptModule returns it as it is
        traced = torch.jit.trace(model, inputs)
    if len(inputs) != 1:
        return traced
    try:  # one tensor in, one tensor out: refuse other shapes, as a compiled graph does
        return torch.jit.script(_FixedShape(traced, list(inputs[0].shape)))
    except Exception:
        return traced
