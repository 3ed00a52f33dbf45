"""One worker's PyTorch on one device: the default hooks, with the types AWS's PyTorch
toolkit (sagemaker-pytorch-inference) exchanges.

- ``model_fn``: TorchScript from the model directory, on the device.
- ``input_fn``: the body decoded by Content-Type, as a torch tensor on the device (float32
  for JSON, JSON lines and CSV, like AWS's ``torch.FloatTensor``; NPY keeps its dtype); a
  dict of tensors for NPZ or a JSON object.
- ``predict_fn``: the model called on those tensors (or on what a user ``input_fn``
  returned) under ``inference_mode`` and the device's execution context; returns what the
  model returned, tensors on the device.
- ``output_fn`` (the base class's): tensors, arrays or lists encoded by Accept.

``TorchSession`` holds what every device shares (threads, grad off, inputs in, outputs out);
each subclass changes only the steps that differ: where a model is loaded to, how a model
is put on the device, where inputs go, and what wraps the forward call.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import weakref
from pathlib import Path
from typing import Any, ContextManager, List, Optional, Tuple

from eikit.accelerators import ProbeResult
from eikit.compile.command import not_compiled_message
from eikit.errors import ConfigurationError, NotCompiled
from eikit.neuron.facts import GENERATIONS
from eikit.neuron.manifest import Compiled, read_manifest
from eikit.runtime import ModelSession
from eikit_pytorch import batches
from eikit_pytorch.compiled import CompiledModel, load_compiled
from eikit_pytorch.loading import (
    find_model_file,
    import_package,
    load_torchscript,
    looks_neuron_compiled,
)
from eikit_pytorch.parity import verify_on_device
from eikit_pytorch.shapes import empty_request, refusal
from eikit_pytorch.tensors import request_tensors, to_inputs, to_numpy

log = logging.getLogger(__name__)


def generation_of(module: str) -> str:
    """The NeuronCore generation a Neuron package serves (torch_neuron: inf1)."""
    return next(name for name, gen in GENERATIONS.items() if gen.module == module)


def match_float(tensor: Any, dtype: Any) -> Any:
    """Floating inputs take the model's floating dtype: float64 NPY into a float32 model
    (or JSON's float32 into a float64 one) would otherwise fail in the forward call."""
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        return tensor.to(dtype)
    return tensor


class TorchSession(ModelSession):
    """The CPU session, and the base of the others."""

    api = "torch"
    map_location: Optional[str] = "cpu"

    def __init__(self, accelerator: ProbeResult, device: str, threads: Optional[int]) -> None:
        super().__init__(accelerator, device)
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        # inference_mode is torch >= 1.9; the EI builds (1.3.1, 1.5.1) have only no_grad.
        self._grad_off = getattr(torch, "inference_mode", None) or torch.no_grad
        self._prepared: weakref.WeakSet[Any] = weakref.WeakSet()
        self._dtypes: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self.start()

    def start(self) -> None:
        """What must happen before any model loads, the user's model_fn included."""

    # --- model_fn ---
    def model_fn(self, model_dir: Path) -> Any:
        path = find_model_file(Path(model_dir))
        model = self.prepare(load_torchscript(path, self.map_location))
        log.info(
            "loaded TorchScript %s on %s (%s, torch %s)",
            path,
            self.device,
            self.api,
            self.torch.__version__,
        )
        return model

    def prepare(self, model: Any) -> Any:
        if self._was_prepared(model):
            return model
        ready = self.place(model)
        # A model that cannot be weakly referenced or hashed is simply prepared again.
        with contextlib.suppress(TypeError):
            self._prepared.add(ready)
        return ready

    def _was_prepared(self, model: Any) -> bool:
        try:
            return model in self._prepared
        except TypeError:
            return False

    def place(self, model: Any) -> Any:
        """Put one model on the device in inference mode."""
        if isinstance(model, self.torch.nn.Module):
            model.eval()
        return model

    def require_torchscript(self, model: Any) -> None:
        if not isinstance(model, self.torch.jit.ScriptModule):
            raise ConfigurationError(
                "%s needs a TorchScript model but model_fn returned %s: return "
                "torch.jit.load(...) or torch.jit.script/trace of the model"
                % (self.api, type(model).__name__)
            )

    # --- input_fn ---
    def to_input(self, decoded: Any) -> Any:
        data = request_tensors(decoded)
        if isinstance(data, dict):
            return {key: self.to_device(tensor) for key, tensor in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.to_device(tensor) for tensor in data]
        return self.to_device(data)

    # --- predict_fn ---
    def predict(self, model: Any, data: Any) -> Any:
        """The default hooks end to end, moving inputs once (in predict_fn), not twice."""
        return to_numpy(self.predict_fn(request_tensors(data), model))

    def predict_fn(self, data: Any, model: Any) -> Any:
        dtype = self._float_dtype(model)
        inputs = [self.to_device(match_float(tensor, dtype)) for tensor in to_inputs(data)]
        empty = empty_request(inputs)
        if empty is not None:
            raise empty
        try:
            with self._grad_off(), self.execution():
                return model(*inputs)
        except Exception as exc:
            refused = refusal(exc, inputs)
            if refused is None:
                raise
            raise refused from exc

    def to_device(self, tensor: Any) -> Any:
        return tensor

    def _float_dtype(self, model: Any) -> Any:
        """The floating dtype of the model's parameters (cached per model), or None."""
        try:
            return self._dtypes[model]
        except (KeyError, TypeError):
            pass
        dtype = None
        if isinstance(model, self.torch.nn.Module):
            for tensor in itertools.chain(model.parameters(), model.buffers()):
                if tensor.is_floating_point():
                    dtype = tensor.dtype
                    break
        with contextlib.suppress(TypeError):
            self._dtypes[model] = dtype
        return dtype

    def execution(self) -> ContextManager[Any]:
        """The context the forward call runs in."""
        return contextlib.nullcontext()

    def to_wire(self, prediction: Any) -> Any:
        return to_numpy(prediction)

    # --- dynamic batching: tensors stack and split like arrays ---
    def batch_key(self, data: Any) -> Optional[Tuple[Any, int]]:
        return batches.tensor_key(data) or super().batch_key(data)

    def stack_inputs(self, inputs: List[Any]) -> Any:
        return batches.stack(inputs)

    def split_prediction(self, prediction: Any, counts: List[int]) -> Optional[List[Any]]:
        return batches.split(prediction, counts)


class CudaSession(TorchSession):
    """One GPU per worker: model and inputs on ``device``, outputs copied back."""

    api = "cuda"

    def __init__(self, accelerator: ProbeResult, device: str, threads: Optional[int]) -> None:
        self.map_location = device
        super().__init__(accelerator, device, threads)

    def start(self) -> None:
        target = self.torch.device(self.device)
        if target.type == "cuda":
            # so a model_fn that says "cuda" or calls .cuda() lands on this worker's GPU
            self.torch.cuda.set_device(target)

    def place(self, model: Any) -> Any:
        if isinstance(model, self.torch.nn.Module):
            model = model.to(self.device)
            model.eval()
        return model

    def to_device(self, tensor: Any) -> Any:
        return tensor.to(self.device)


class TorchEiaSession(TorchSession):
    """EI through the torcheia plugin (torch 1.5.1)."""

    api = "torcheia"

    def start(self) -> None:
        self.torcheia = import_package("torcheia")
        # torcheia's documented set-up: the legacy executor, then attach the model.
        self.torch._C._jit_set_profiling_executor(False)

    def place(self, model: Any) -> Any:
        self.require_torchscript(model)
        model.eval()
        return self.torcheia.jit.attach_eia(model, 0)

    def execution(self) -> ContextManager[Any]:
        return self.torch.jit.optimized_execution(True)  # type: ignore[no-any-return]


class TorchEiaLegacySession(TorchSession):
    """EI through AWS's torch_eia build (torch 1.3.1): the model stays on CPU."""

    api = "torch_eia"

    def place(self, model: Any) -> Any:
        self.require_torchscript(model)
        model.eval()
        return model

    def execution(self) -> ContextManager[Any]:
        # torch_eia's optimized_execution takes a second argument; stock torch's does not.
        return self.torch.jit.optimized_execution(  # type: ignore[no-any-return]
            True, {"target_device": "eia:0"}
        )


class NeuronSession(TorchSession):
    """Inferentia / Trainium: a model compiled for this host's generation; inputs stay on CPU.

    With eikit's manifest (``eikit compile``), the graphs compiled for this generation are
    loaded as one ``CompiledModel`` (padding to the compiled batch sizes, splitting larger
    requests); their parity is checked here when the compiler could not. A TorchScript
    compiled by hand (Neuron ops in its code) loads as it is. An uncompiled model raises
    ``NotCompiled``, whose message holds the ``eikit compile`` command: the worker then
    falls back to the CPU, saying so, or refuses under ``EIKIT_STRICT_ACCELERATOR``.
    """

    map_location = None

    def __init__(
        self, accelerator: ProbeResult, device: str, threads: Optional[int], split: bool = True
    ) -> None:
        self.api = str(accelerator.detail.get("package", "torch_neuronx"))
        self.generation = str(accelerator.detail.get("generation") or generation_of(self.api))
        self.split = split
        super().__init__(accelerator, device, threads)

    def start(self) -> None:
        # The package registers the Neuron ops that torch.jit.load needs: import it before
        # any model loads, the user's model_fn included.
        import_package(self.api)

    def model_fn(self, model_dir: Path) -> Any:
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        entry = manifest.compiled.get(self.generation) if manifest else None
        if entry is not None:
            return self._load_compiled(model_dir, entry)
        path = find_model_file(model_dir)
        if manifest is None and looks_neuron_compiled(path):
            log.info(
                "%s holds Neuron ops but no eikit manifest: loaded as it is (its input "
                "shapes are fixed; no padding to batch sizes)",
                path,
            )
            return super().model_fn(model_dir)
        gen = GENERATIONS[self.generation]
        message = not_compiled_message(str(model_dir), self.generation, gen.neuron_core)
        if manifest is not None:
            message = "it was compiled for %s only; %s" % (
                ", ".join(sorted(manifest.compiled)) or "no generation",
                message,
            )
        raise NotCompiled(message)

    def _load_compiled(self, model_dir: Path, entry: Compiled) -> Any:
        model, paths = load_compiled(model_dir, entry, self.split, self.map_location)
        if not entry.parity_checked:
            result = verify_on_device(model, model_dir, entry)
            if result["failed"]:
                raise ConfigurationError(
                    "the graphs compiled for %s do not answer as the original did on this "
                    "device (rtol %g, atol %g): %s"
                    % (
                        entry.generation,
                        result["rtol"],
                        result["atol"],
                        "; ".join(result["failed"]),
                    )
                )
            log.info(
                "parity on the device: the compiled graphs match the original (max abs error %.3g)",
                result["max_abs_error"],
            )
        log.info(
            "loaded the model compiled for %s: graphs %s",
            entry.describe(),
            ", ".join(p.name for p in paths),
        )
        return model

    def prepare(self, model: Any) -> Any:
        if isinstance(model, CompiledModel):
            return model
        return super().prepare(model)
