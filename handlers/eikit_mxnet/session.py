"""One worker's MXNet on one context: the default hooks, with the types AWS's MXNet
toolkit (sagemaker-mxnet-inference) exchanges.

- ``model_fn``: a Module checkpoint or a Gluon export (``loading``), on the context.
- ``input_fn``: the body decoded by Content-Type, as an NDArray on ``mx.cpu()`` (float32,
  as AWS's ``mx.nd.array(...)``); CSV reshaped to a Module's input shape as AWS's Module
  ``input_fn`` does; a dict of NDArrays for NPZ or a JSON object.
- ``predict_fn``: a Module runs ``forward(DataBatch(inputs), is_train=False)`` (a DataIter
  from a user ``input_fn`` goes through ``Module.predict``, as on AWS); a Gluon block is
  called on the inputs. Returns NDArrays: one for one output, a list for several.
- ``output_fn`` (the base class's): NDArrays, arrays or lists encoded by Accept.

``MXNetSession`` is the CPU session and holds everything; the others change only the
context a model is bound to and where inputs go: ``mx.gpu(i)`` (inputs moved there) and
``mx.eia()`` (inputs stay on ``mx.cpu()``).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Tuple, Union

from eikit import codecs
from eikit.accelerators import ProbeResult
from eikit.errors import BadRequest, ConfigurationError, InternalError
from eikit.runtime import ModelSession
from eikit_mxnet import batches
from eikit_mxnet.arrays import empty_request, refusal, request_arrays, to_inputs, to_numpy, wait
from eikit_mxnet.loading import find_model_files, load_gluon, load_module

if TYPE_CHECKING:
    from eikit.context import Context
    from eikit.pipeline import Pipeline
    from eikit.user_module import UserHooks

log = logging.getLogger(__name__)


class MXNetSession(ModelSession):
    """The CPU session, and the base of the others."""

    api = "mxnet"

    def __init__(self, accelerator: ProbeResult, device: str) -> None:
        super().__init__(accelerator, device)
        import mxnet as mx

        self.mx = mx
        self.start()
        self.ctx = self.model_context()
        self.model: Any = None  # the last model prepared: input_fn shapes CSV for it
        self._stand_in_eia()

    def start(self) -> None:
        """What must happen before any model loads, the user's model_fn included."""

    def model_context(self) -> Any:
        return self.mx.cpu()

    def to_device(self, array: Any) -> Any:
        """Where predict_fn puts an input: the default input_fn's stay on mx.cpu()."""
        return array

    def _stand_in_eia(self) -> None:
        """Scripts written for AWS's EI containers call ``mx.eia()`` in model_fn. Where this
        mxnet has none, it answers this session's context, so they load unchanged."""
        if hasattr(self.mx, "eia"):
            return
        ctx = self.ctx

        def eia(device_id: int = 0) -> Any:
            log.warning("the script called mx.eia(): no EI accelerator here, using %s", ctx)
            return ctx

        eia.eikit_stand_in = True  # type: ignore[attr-defined]
        self.mx.eia = eia

    # --- model_fn ---
    def model_fn(self, model_dir: Path) -> Any:
        files = find_model_files(Path(model_dir))
        if files.kind == "module":
            model = load_module(self.mx, files, self.ctx)
        else:
            model = load_gluon(self.mx, files, self.ctx)
        log.info(
            "loaded MXNet %s %s (epoch %d) on %s (%s, mxnet %s)",
            "Module" if files.kind == "module" else "Gluon export",
            files.symbol,
            files.epoch,
            self.ctx,
            self.api,
            self.mx.__version__,
        )
        return self.prepare(model)

    def prepare(self, model: Any) -> Any:
        mx = self.mx
        if isinstance(model, mx.module.BaseModule):
            model = self._place_module(model)
        elif isinstance(model, mx.gluon.Block):
            self._place_block(model)
        self.model = model
        return model

    def _place_module(self, module: Any) -> Any:
        if not (module.binded and module.params_initialized):
            raise ConfigurationError(
                "model_fn returned an MXNet Module that is not bound with parameters: call "
                "mod.bind(for_training=False, data_shapes=...) and mod.set_params(...) "
                "(or load_checkpoint) before returning it"
            )
        contexts = list(getattr(module, "_context", []) or [])
        if contexts == [self.ctx]:
            return module
        # A Module cannot move: bind the same symbol on this context with its parameters.
        args, aux = module.get_params()
        placed = self.mx.mod.Module(
            symbol=module.symbol,
            context=self.ctx,
            data_names=module.data_names,
            label_names=module.label_names,
        )
        placed.bind(
            for_training=False,
            data_shapes=module.data_shapes,
            label_shapes=module.label_shapes or None,
        )
        placed.set_params(args, aux, allow_missing=True)
        log.info("moved the Module model_fn returned from %s to %s", contexts, self.ctx)
        return placed

    def _place_block(self, block: Any) -> None:
        """Its parameters on this context (copied once, also where they already are: an
        EI context compares equal to the CPU one it runs beside)."""
        params = block.collect_params()
        try:
            for param in params.values():
                param.list_ctx()
        except RuntimeError as exc:  # parameters never initialized
            raise ConfigurationError(
                "model_fn returned a Gluon block whose parameters are not initialized: call "
                "net.initialize() or net.load_parameters(...) before returning it (%s)" % exc
            ) from exc
        if params:
            params.reset_ctx(self.ctx)

    # --- input_fn ---
    def input_fn(self, input_data: Union[bytes, str], content_type: str) -> Any:
        if isinstance(input_data, str):
            input_data = input_data.encode("utf-8")
        data = self.to_input(codecs.decode(input_data, content_type))
        if codecs.media_type(content_type) == codecs.CSV:
            data = self._csv_shape(data)
        return data

    def to_input(self, decoded: Any) -> Any:
        return request_arrays(self.mx, decoded)

    def _csv_shape(self, data: Any) -> Any:
        """CSV rows as the model takes them: reshaped to a one-input Module's shape, as
        AWS's Module input_fn does (``(-1,) + shape[1:]``); one row as one record."""
        if not isinstance(data, self.mx.nd.NDArray):
            return data
        module = self.model if isinstance(self.model, self.mx.module.BaseModule) else None
        if module is not None and len(module.data_shapes) == 1:
            target = (-1,) + tuple(module.data_shapes[0].shape[1:])
        elif data.ndim == 1:
            target = (1, -1)
        else:
            return data
        try:
            return data.reshape(target)
        except (self.mx.base.MXNetError, ValueError) as exc:
            raise BadRequest(
                "CSV of shape %s does not reshape to the model's input %s"
                % (list(data.shape), list(target))
            ) from exc

    # --- predict_fn ---
    def predict_fn(self, data: Any, model: Any) -> Any:
        mx = self.mx
        if isinstance(model, mx.module.BaseModule):
            return self._run_module(model, data)
        if isinstance(model, mx.gluon.Block):
            return self._run(model, to_inputs(mx, data), lambda inputs: model(*inputs))
        raise InternalError(
            "the default predict_fn runs an MXNet Module or Gluon block; model_fn returned %s: "
            "define predict_fn in the inference script" % type(model).__name__
        )

    def _run_module(self, module: Any, data: Any) -> Any:
        mx = self.mx
        if isinstance(data, mx.io.DataIter):  # a user input_fn written for AWS's Module path
            return wait(mx, module.predict(data))
        if isinstance(data, mx.io.DataBatch):
            inputs = list(data.data)
        else:
            inputs = to_inputs(mx, data, module.data_names)
        if len(inputs) != len(module.data_names):
            raise BadRequest(
                "the model takes %d input(s) (%s); the request has %d"
                % (len(module.data_names), ", ".join(module.data_names), len(inputs))
            )

        def forward(placed: List[Any]) -> Any:
            module.forward(mx.io.DataBatch(placed), is_train=False)
            outputs = [out.copy() for out in module.get_outputs()]
            return outputs[0] if len(outputs) == 1 else outputs

        takes = ", ".join(
            "%s [batch, %s]" % (desc.name, ", ".join(str(n) for n in desc.shape[1:]))
            for desc in module.data_shapes
        )
        return self._run(module, inputs, forward, " (the model takes %s)" % takes)

    def _run(self, model: Any, inputs: List[Any], call: Any, takes: str = "") -> Any:
        placed = [self.to_device(array) for array in inputs]
        empty = empty_request(placed)
        if empty is not None:
            raise empty
        try:
            return wait(self.mx, call(placed))
        except Exception as exc:
            refused = refusal(self.mx, exc, placed)
            if refused is None:
                raise
            raise BadRequest(str(refused) + takes) from exc

    # --- output_fn ---
    # --- dynamic batching: NDArrays stack and split like arrays ---
    def batch_key(self, data: Any) -> Optional[Tuple[Any, int]]:
        return batches.ndarray_key(self.mx, data) or super().batch_key(data)

    def stack_inputs(self, inputs: List[Any]) -> Any:
        return batches.stack(self.mx, inputs)

    def split_prediction(self, prediction: Any, counts: List[int]) -> Optional[List[Any]]:
        return batches.split(self.mx, prediction, counts)

    def to_wire(self, prediction: Any) -> Any:
        return to_numpy(self.mx, prediction)

    # --- the pipeline ---
    def make_pipeline(self, hooks: UserHooks, context: Context, default_accept: str) -> Pipeline:
        from eikit_mxnet.pipeline import mxnet_pipeline

        return mxnet_pipeline(hooks, self, context, default_accept)


class CudaSession(MXNetSession):
    """One GPU per worker: the model bound to ``mx.gpu(i)``, inputs moved there."""

    api = "cuda"

    def model_context(self) -> Any:
        return self.mx.gpu(int(self.device.split(":")[1]))

    def to_device(self, array: Any) -> Any:
        return array.as_in_context(self.ctx)


class EiaSession(MXNetSession):
    """Elastic Inference: the model bound to ``mx.eia()``; inputs stay on ``mx.cpu()``."""

    def __init__(self, accelerator: ProbeResult, device: str) -> None:
        self.api = str(accelerator.detail.get("api", "amazonei_mxnet"))
        super().__init__(accelerator, device)

    def start(self) -> None:
        if self.api == "eimx":  # the plugin adds mx.eia() to stock mxnet when imported
            try:
                importlib.import_module("eimx")
            except Exception as exc:
                raise ConfigurationError(
                    "eimx does not import (%s: %s)" % (type(exc).__name__, exc)
                ) from exc

    def model_context(self) -> Any:
        eia: Optional[Any] = getattr(self.mx, "eia", None)
        if eia is None:
            raise ConfigurationError("mxnet %s has no mx.eia()" % self.mx.__version__)
        return eia()
