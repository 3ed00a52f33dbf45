"""A model compiled for Neuron: one TorchScript graph per batch size, called as one model.

A compiled graph takes fixed shapes. ``CompiledModel`` checks each request against the
shapes in the manifest (a 400 that names them when they differ), casts inputs to the
compiled dtypes, runs the request on the smallest compiled batch size that holds it with
zero rows appended, and cuts those rows from every batch-shaped output. A request larger
than every size is split into chunks of the largest, or refused (``plan_batches``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from eikit.errors import BadRequest, InferenceError
from eikit.neuron.manifest import Compiled, InputSpec, plan_batches
from eikit_pytorch.shapes import describe


class CompiledModel:
    """Callable like the model it was compiled from (``model(*inputs)``)."""

    def __init__(
        self,
        graphs: Dict[int, Any],
        inputs: Sequence[InputSpec],
        split: bool,
        generation: str = "",
    ) -> None:
        import torch

        self.torch = torch
        self.graphs = dict(graphs)
        self.sizes = sorted(self.graphs)
        self.inputs = list(inputs)
        self.split = split
        self.generation = generation
        self.dtypes = [getattr(torch, spec.dtype) for spec in self.inputs]

    def expected(self) -> str:
        return "; ".join(spec.describe() for spec in self.inputs)

    def _refuse(self, what: str) -> BadRequest:
        return BadRequest(
            "%s; the model was compiled (for %s) for %s with N in %s"
            % (what, self.generation or "Neuron", self.expected(), ",".join(map(str, self.sizes)))
        )

    def _check(self, inputs: Sequence[Any]) -> List[Any]:
        if len(inputs) != len(self.inputs):
            raise self._refuse("the request has %d input(s)" % len(inputs))
        checked = []
        for tensor, spec, dtype in zip(inputs, self.inputs, self.dtypes):
            shape = list(getattr(tensor, "shape", []))
            if len(shape) != len(spec.shape) + 1 or shape[1:] != spec.shape:
                raise self._refuse("the request's input is %s" % describe([tensor]))
            checked.append(tensor if tensor.dtype == dtype else tensor.to(dtype))
        records = {int(t.shape[0]) for t in checked}
        if len(records) != 1:
            raise self._refuse(
                "the inputs hold different numbers of records (%s)" % sorted(records)
            )
        if records == {0}:
            raise BadRequest("the request holds no records (%s)" % describe(checked))
        return checked

    def __call__(self, *inputs: Any) -> Any:
        tensors = self._check(inputs)
        records = int(tensors[0].shape[0])
        parts = []
        start = 0
        for count, size in plan_batches(records, self.sizes, self.split):
            chunk = [self._pad(t[start : start + count], size) for t in tensors]
            parts.append(cut(self.graphs[size](*chunk), count, size))
            start += count
        return parts[0] if len(parts) == 1 else join(parts, self.torch)

    def _pad(self, tensor: Any, size: int) -> Any:
        missing = size - int(tensor.shape[0])
        if missing == 0:
            return tensor
        zeros = self.torch.zeros((missing,) + tuple(tensor.shape[1:]), dtype=tensor.dtype)
        return self.torch.cat([tensor, zeros], 0)


def cut(output: Any, count: int, size: int) -> Any:
    """The first ``count`` records of every output whose first dimension is the padded
    batch (``size``); other outputs as they are."""
    if isinstance(output, (list, tuple)):
        return type(output)(cut(each, count, size) for each in output)
    if isinstance(output, dict):
        return {key: cut(value, count, size) for key, value in output.items()}
    shape = getattr(output, "shape", None)
    if shape is not None and len(shape) >= 1 and int(shape[0]) == size:
        return output[:count]
    return output


def join(parts: List[Any], torch: Any) -> Any:
    """Chunks' outputs as one: batch-shaped tensors concatenated along the first dimension."""
    first = parts[0]
    if isinstance(first, (list, tuple)):
        return type(first)(join([p[i] for p in parts], torch) for i in range(len(first)))
    if isinstance(first, dict):
        return {key: join([p[key] for p in parts], torch) for key in first}
    if getattr(first, "shape", None) is not None and len(first.shape) >= 1:
        return torch.cat(parts, 0)
    raise InferenceError(
        "the request was split across compiled batch sizes, but the model returns %s, which "
        "has no batch dimension to join on: send at most the largest compiled batch size"
        % type(first).__name__
    )


def load_compiled(
    model_dir: Path, compiled: Compiled, split: bool, map_location: Any = None
) -> Tuple[CompiledModel, List[Path]]:
    """Each compiled graph loaded (the Neuron package must be imported first)."""
    import torch

    graphs = {}
    paths = []
    for size, relative in sorted(compiled.graphs.items()):
        path = Path(model_dir) / relative
        if not path.is_file():
            from eikit.errors import ConfigurationError

            raise ConfigurationError(
                "the Neuron manifest names %s (batch size %d) but %s has no such file"
                % (relative, size, model_dir)
            )
        graph = torch.jit.load(str(path), map_location=map_location)
        graph.eval()
        graphs[size] = graph
        paths.append(path)
    return CompiledModel(graphs, compiled.inputs, split, compiled.generation), paths
