"""The contract between the framework-agnostic core and a framework runtime.

Runtimes are plugins found through the entry-point group ``eikit.runtimes`` and imported
only when asked for, so the core never imports a framework.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

from eikit.accelerators import Probe, ProbeResult
from eikit.errors import ConfigurationError

if TYPE_CHECKING:
    from eikit.compile.example import Example
    from eikit.context import Context
    from eikit.pipeline import Pipeline
    from eikit.settings import Settings
    from eikit.user_module import UserHooks

ENTRY_POINT_GROUP = "eikit.runtimes"


class ModelSession(ABC):
    """One worker's framework on one device. It supplies the framework's default hooks,
    exchanging the types AWS's inference toolkit for that framework exchanges, so that any
    mix of user and default hooks behaves as in AWS's container:

    ================  ====================================  ===============================
    hook              takes                                 returns
    ================  ====================================  ===============================
    ``model_fn``      the model directory                   the model, on the device
    ``input_fn``      body (``bytes``, or ``str`` when the  the framework's input (PyTorch:
                      pipeline decoded JSON/CSV text), the  a tensor on the device; MXNet:
                      request's Content-Type                an NDArray; ...)
    ``predict_fn``    what ``input_fn`` returned (the       the framework's output, as the
                      default's or the user's), the model   model returned it
    ``output_fn``     a prediction (framework objects,      ``(body bytes, content type)``
                      arrays, lists, dicts), one media
                      type to produce
    ================  ====================================  ===============================

    ``pipeline.Pipeline`` composes these with the user's hooks without knowing the
    framework. When the script defines no request hook at all it takes a shorter path,
    ``codecs.decode`` -> ``predict`` -> ``codecs.encode``; ``predict`` must answer exactly
    what ``to_wire(predict_fn(to_input(decoded), model))`` would, which the base class
    guarantees by defining it so. A subclass implements ``model_fn``, ``prepare``,
    ``to_input``, ``predict_fn`` and ``to_wire``; it may override ``predict`` to go faster
    as long as the answers stay identical.

    Errors: input the model cannot take is the client's (``BadRequest``, 400); anything
    else a default hook raises is the server's.
    """

    def __init__(self, accelerator: ProbeResult, device: str) -> None:
        self.accelerator = accelerator
        self.device = device

    # --- model_fn ---------------------------------------------------------------

    @abstractmethod
    def model_fn(self, model_dir: Path) -> Any:
        """The default ``model_fn``: load the model files in ``model_dir`` onto the device."""

    @abstractmethod
    def prepare(self, model: Any) -> Any:
        """Put a model returned by a user ``model_fn`` on the device (a no-op where it is)."""

    # --- input_fn ---------------------------------------------------------------

    def input_fn(self, input_data: Union[bytes, str], content_type: str) -> Any:
        """The default ``input_fn``: decode by Content-Type (``codecs``), then ``to_input``."""
        from eikit import codecs  # numpy: imported in workers, not in the frontend

        if isinstance(input_data, str):
            input_data = input_data.encode("utf-8")
        return self.to_input(codecs.decode(input_data, content_type))

    @abstractmethod
    def to_input(self, decoded: Any) -> Any:
        """What ``codecs.decode`` returned (arrays, a dict of arrays, parsed JSON, bytes) as
        the framework's input; ``BadRequest`` for what the default hooks cannot take."""

    # --- predict_fn -------------------------------------------------------------

    @abstractmethod
    def predict_fn(self, data: Any, model: Any) -> Any:
        """The default ``predict_fn``: run the model on ``data`` (the default ``input_fn``'s
        result or the user's), on the device; return what the model returned."""

    # --- output_fn --------------------------------------------------------------

    @abstractmethod
    def to_wire(self, prediction: Any) -> Any:
        """Framework objects (also inside lists, tuples and dicts) as things the encoders
        take: numpy arrays, lists, numbers, bytes."""

    def output_fn(self, prediction: Any, accept: str) -> Tuple[bytes, str]:
        """The default ``output_fn``: encode by ``accept`` (the first type listed that can
        be produced; ``NotAcceptable`` if none)."""
        from eikit import codecs

        media = codecs.negotiate(accept, codecs.JSON)
        return codecs.encode(self.to_wire(prediction), media), media

    # --- the path with no user request hook ------------------------------------

    def predict(self, model: Any, data: Any) -> Any:
        """Decoded request in, encodable prediction out: the default hooks end to end."""
        return self.to_wire(self.predict_fn(self.to_input(data), model))

    # --- dynamic batching ----------------------------------------------------------

    def batch_key(self, data: Any) -> Optional[Tuple[Any, int]]:
        """What ``input_fn`` returned, seen for stacking: (a key that requests stacked
        together share, its rows), or None when it cannot be stacked. The default stacks
        numpy arrays of two or more dimensions (``eikit.stacking``)."""
        from eikit import stacking

        return stacking.array_key(data)

    def stack_inputs(self, inputs: List[Any]) -> Any:
        """Inputs of one ``batch_key``, as one input (along the first dimension)."""
        from eikit import stacking

        return stacking.stack_arrays(inputs)

    def split_prediction(self, prediction: Any, counts: List[int]) -> Optional[List[Any]]:
        """``predict_fn``'s answer to a stacked input, cut back into one answer per request
        (``counts`` rows each); None when it cannot be (the requests then run one by one)."""
        from eikit import stacking

        return stacking.split_nested(prediction, counts)

    # --- the pipeline -------------------------------------------------------------

    def make_pipeline(
        self, hooks: UserHooks, context: Context, default_accept: str
    ) -> Optional[Pipeline]:
        """A pipeline of the runtime's own, or None (the default) for the core's
        ``eikit.pipeline.Pipeline`` over these hooks. A runtime whose AWS container ran
        scripts another way (TensorFlow's ``input_handler``/``output_handler``) returns its
        own; it must offer ``load()``, ``invoke(...) -> Result``, ``timings`` and
        ``context`` as ``Pipeline`` does; ``hooks.namespace`` holds the script's other
        names. (The worker builds the default: ``eikit.pipeline`` sits below the runtimes.)"""
        return None


class Runtime(ABC):
    name = ""
    install_hint = ""
    # The framework's top-level module (``"mxnet"``). Only looked for, never imported: with
    # EIKIT_FRAMEWORK unset and several runtimes installed, those whose framework is missing
    # are left out of the choice. None: always a candidate.
    framework_module: Optional[str] = None
    # AWS's rule for code/requirements.txt beside code/lib: False installs it whatever lib/
    # holds (sagemaker-inference: PyTorch, MXNet); True skips it when lib/ exists (TensorFlow).
    lib_replaces_requirements = False

    @abstractmethod
    def probes(self, settings: Settings) -> Dict[str, Probe]:
        """Probes for the accelerators this framework can use, keyed by kind."""

    @abstractmethod
    def session(self, accelerator: ProbeResult, settings: Settings, worker: int) -> ModelSession:
        """Open the framework on ``accelerator`` for worker number ``worker``."""

    def worker_environment(
        self, accelerator: ProbeResult, settings: Settings, worker: int
    ) -> Dict[str, str]:
        """Environment variables a worker sets, where the user has not, before it imports
        the inference script (which may import the framework, reading them)."""
        return {}

    def worker_pinning(
        self, accelerator: ProbeResult, settings: Settings, worker: int
    ) -> Dict[str, str]:
        """Environment that binds worker ``worker`` to its own device (Neuron:
        ``NEURON_RT_VISIBLE_CORES=<its core>``). Unlike ``worker_environment`` it replaces
        what the worker inherited: a container-wide value would have every worker claim the
        same devices. None by default."""
        return {}

    def fork_preload(self, accelerator: ProbeResult) -> Optional[Tuple[str, ...]]:
        """Modules a template process imports once and then forks workers from, for a
        model on ``accelerator`` (``EIKIT_WORKER_START=fork``). Only modules whose import
        starts no thread that fork would lose and opens no device: each worker must still
        choose its own device after the fork. None (the default): workers are spawned."""
        return None

    def worker_numbers(self, settings: Settings) -> Optional[int]:
        """How many worker numbers (the ``worker`` of ``session``) can be in use at once,
        where each holds something finite (TensorFlow: two ports of
        ``SAGEMAKER_SAFE_PORT_RANGE``); None: no limit. A multi-model endpoint hands numbers
        out from a free list within it."""
        return None

    def batching(self, settings: Settings) -> Tuple[int, float]:
        """Dynamic batching for this runtime's models: (most requests in a batch, most
        seconds a request waits for its batch to fill). A batch of 1 is no batching. The
        default reads ``SAGEMAKER_TS_BATCH_SIZE`` and ``SAGEMAKER_TS_MAX_BATCH_DELAY``."""
        return settings.ts_batch_size, settings.ts_max_batch_delay / 1000.0

    def execution(self, settings: Settings, accelerator: ProbeResult) -> Dict[str, str]:
        """Extra facts for ``eikit detect`` about how this runtime will run the model on
        ``accelerator`` (TensorFlow: a TF Serving binary or in-process, and why); each
        becomes a line of the table and a field of ``--json``. None by default."""
        return {}

    def default_workers(self, accelerator: ProbeResult, settings: Optional[Settings] = None) -> int:
        """Workers when ``SAGEMAKER_MODEL_SERVER_WORKERS`` is unset; ``settings`` lets a
        runtime read its own (TensorFlow: ``SAGEMAKER_TFS_INSTANCE_COUNT``)."""
        if accelerator.kind == "cpu":
            return os.cpu_count() or 1
        if accelerator.kind == "eia":
            return 1  # one accelerator, reached over the network: more workers only queue
        return max(1, accelerator.count)

    def profile_model(self, model_dir: Path, example: Any) -> Optional[Dict[str, float]]:
        """For ``eikit advise``: one forward pass on ``example`` (a numpy batch) measured
        in-process: ``flops``, ``parameter_bytes``, ``forward_ms`` (one CPU thread).

        None where the framework cannot count them. The default calls
        ``profile_model(model_dir, example)`` in the runtime package's ``flops`` module
        when it has one, so the framework code stays in the runtime's package.
        """
        module = self._package_module("flops")
        if module is None:
            return None
        result = module.profile_model(model_dir, example)
        return dict(result) if result is not None else None

    def compile_model(
        self,
        model_dir: Path,
        out_dir: Path,
        generation: str,
        example: Example,
        batch_sizes: List[int],
        options: Dict[str, Any],
    ) -> Dict[str, Any]:
        """For ``eikit compile``: compile the model in ``model_dir`` for a Neuron
        ``generation`` into ``out_dir`` (one graph per batch size, checked against the
        original on records made from ``example``) and return the manifest entry
        (``eikit.neuron.manifest.Compiled.to_dict()``).

        The default calls ``compile_model`` in the runtime package's ``compiling`` module;
        a runtime without one cannot compile (ConfigurationError)."""
        module = self._package_module("compiling")
        if module is None:
            raise ConfigurationError(
                "eikit compile does not compile %s models: it compiles PyTorch (TorchScript). "
                "Compile with the framework's Neuron package, or with SageMaker Neo "
                "(eikit compile --neo)" % (self.name or type(self).__name__)
            )
        return dict(
            module.compile_model(model_dir, out_dir, generation, example, batch_sizes, options)
        )

    def _package_module(self, name: str) -> Any:
        """The runtime package's module ``name`` (``eikit_pytorch.flops``), or None."""
        import importlib

        package = type(self).__module__.rsplit(".", 1)[0]
        try:
            return importlib.import_module(package + "." + name)
        except ModuleNotFoundError as exc:
            if exc.name != package + "." + name:
                raise
            return None


def _entry_points() -> List[Any]:
    from importlib import metadata

    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, []))  # Python 3.8/3.9


def available_runtimes() -> List[str]:
    return sorted({ep.name for ep in _entry_points()})


def _framework_installed(entry_point: Any) -> bool:
    """Whether the framework of the runtime behind ``entry_point`` can be imported here."""
    import importlib.util

    try:
        module = getattr(entry_point.load(), "framework_module", None)
    except Exception:  # a runtime that does not import is nobody's choice
        return False
    if not module:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def find_runtime(name: Optional[str]) -> Runtime:
    """The runtime called ``name``, or the only one installed when ``name`` is None."""
    eps = {ep.name: ep for ep in _entry_points()}
    if name is None:
        names = sorted(eps)
        if len(names) > 1:
            names = [each for each in names if _framework_installed(eps[each])]
        if len(names) != 1:
            raise ConfigurationError(
                "set EIKIT_FRAMEWORK to one of: %s" % (", ".join(sorted(eps)) or "(none installed)")
            )
        name = names[0]
    if name not in eps:
        raise ConfigurationError(
            "no eikit runtime %r (installed: %s)" % (name, ", ".join(sorted(eps)) or "none")
        )
    try:
        factory = eps[name].load()
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError("runtime %r cannot be imported: %s" % (name, exc)) from exc
    runtime = factory()
    if not isinstance(runtime, Runtime):
        raise ConfigurationError("entry point %r is not an eikit Runtime" % name)
    return runtime
