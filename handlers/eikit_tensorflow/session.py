"""One worker's TensorFlow: which executor runs the requests, and the pipeline scripts see.

The executor is chosen once, when the model loads (``open_executor``):

1. the TF Serving path (``serving.ServingExecutor``) when ``serving.find_binary(settings)``
   finds a ``tensorflow_model_server``; ``serving`` is imported only then, and if it or
   what it needs does not import, the in-process path is used and the reason logged;
2. else the in-process path (``inprocess.InProcessExecutor``: TensorFlow in this worker).

On EI, a ServingExecutor that fails to load falls back to in-process on the CPU with a
warning, unless ``EIKIT_STRICT_ACCELERATOR=true``. The choice and its reason are logged and
kept in ``executor_choice`` (``eikit detect`` reports the same reasoning from
``TensorFlowRuntime.execution``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Tuple

import numpy as np

from eikit.accelerators import ProbeResult
from eikit.errors import BadRequest, ConfigurationError
from eikit.runtime import ModelSession
from eikit_tensorflow import layout
from eikit_tensorflow.executor import Executor, LoadedModels
from eikit_tensorflow.invocation import default_request

if TYPE_CHECKING:
    from eikit.context import Context
    from eikit.pipeline import Pipeline
    from eikit.settings import Settings
    from eikit.user_module import UserHooks

log = logging.getLogger(__name__)


def serving_binary(settings: Settings) -> Tuple[Optional[Path], str]:
    """(the TF Serving binary to use or None, why)."""
    try:
        from eikit_tensorflow import serving
    except Exception as exc:  # the module or grpc/tensorflow-serving-api missing
        return None, "the TF Serving path does not import (%s: %s)" % (type(exc).__name__, exc)
    try:
        binary = serving.find_binary(settings)
    except Exception as exc:
        return None, "looking for tensorflow_model_server failed (%s: %s)" % (
            type(exc).__name__,
            exc,
        )
    if binary is None:
        return None, "no tensorflow_model_server binary"
    return Path(binary), "tensorflow_model_server at %s" % binary


def execution_path(settings: Settings) -> Tuple[str, str]:
    """('binary' or 'in-process', why): what a worker will try first."""
    binary, why = serving_binary(settings)
    if binary is not None:
        return "binary", why
    return "in-process", why + ": TensorFlow runs in the worker"


class TensorFlowSession(ModelSession):
    def __init__(
        self, accelerator: ProbeResult, device: str, settings: Settings, worker: int, threads: int
    ) -> None:
        super().__init__(accelerator, device)
        self.settings = settings
        self.worker = worker
        self.threads = threads
        self.executor_choice = ""

    # --- the executor ------------------------------------------------------------

    def _configure_threads(self) -> None:
        """Threads per worker; on GPUs, memory grown as needed, so that several workers
        share a GPU (TensorFlow otherwise takes all of it in the first process)."""
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, self.threads))
            if self.device.startswith("/GPU"):
                for gpu in tf.config.list_physical_devices("GPU"):
                    tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # TensorFlow already initialised in this process
            pass

    def in_process(self, models: layout.Models, device: str, reason: str) -> Executor:
        from eikit_tensorflow.inprocess import InProcessExecutor

        self._configure_threads()
        return InProcessExecutor(models, device, reason)

    def open_executor(self, models: layout.Models) -> Executor:
        binary, why = serving_binary(self.settings)
        if binary is None:
            executor = self.in_process(models, self.device, why)
        else:
            try:
                from eikit_tensorflow import serving

                factory = getattr(serving, "ServingExecutor")  # noqa: B009 - built alongside
                executor = factory(models, self.settings, self.accelerator, self.worker)
            except Exception as exc:
                if self.accelerator.kind != "eia" or self.settings.strict_accelerator:
                    raise
                log.warning(
                    "EI TF Serving did not load the models (%s: %s); falling back to "
                    "in-process TensorFlow on the CPU (EIKIT_STRICT_ACCELERATOR=true to fail)",
                    type(exc).__name__,
                    exc,
                )
                executor = self.in_process(
                    models, "/CPU:0", "EI TF Serving failed: %s: %s" % (type(exc).__name__, exc)
                )
        self.executor_choice = executor.describe()
        log.info("TensorFlow execution path: %s", self.executor_choice)
        return executor

    def load_models(self, model_dir: Path) -> LoadedModels:
        models = layout.discover(model_dir)
        default = layout.default_model(models, self.settings.tfs_default_model_name)
        log.info("SavedModels in %s: %s; default %s", model_dir, layout.describe(models), default)
        return LoadedModels(self.open_executor(models), default)

    # --- ModelSession: the *_fn hooks (scripts written for sagemaker-inference) -------

    def model_fn(self, model_dir: Path) -> Any:
        return self.load_models(model_dir)

    def prepare(self, model: Any) -> Any:
        return model

    def input_fn(self, input_data: Any, content_type: str) -> Any:
        if isinstance(input_data, str):
            input_data = input_data.encode("utf-8")
        return default_request(input_data, content_type)

    def to_input(self, decoded: Any) -> Any:
        if isinstance(decoded, dict):
            return {key: _plain(value) for key, value in decoded.items()}
        if isinstance(decoded, (list, np.ndarray)):
            return {"instances": _plain(decoded)}
        raise BadRequest("a TF Serving request is a JSON object or a list of instances")

    def predict_fn(self, data: Any, model: Any) -> Any:
        if not isinstance(model, LoadedModels):
            raise ConfigurationError(
                "the default predict_fn serves what the default model_fn loads; a model_fn "
                "of your own needs its own predict_fn"
            )
        return model.executor.request(model.default, None, "predict", data)

    def to_wire(self, prediction: Any) -> Any:
        return prediction

    def make_pipeline(self, hooks: UserHooks, context: Context, default_accept: str) -> Pipeline:
        from eikit_tensorflow.handling import TensorFlowPipeline

        return TensorFlowPipeline(hooks, self, context, default_accept)  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
