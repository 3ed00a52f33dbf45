"""The stand-in TF Serving's servables: every model version its config lists, loaded with
TensorFlow, and TF Serving's request handling (``predict_util.cc``, ``classifier.cc``,
``regressor.cc``, ``get_model_metadata_impl.cc``, ``get_model_status_impl.cc``), raising
``Failure`` with TF Serving's gRPC code and message where it refuses a request."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

DEFAULT_SIGNATURE = "serving_default"
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


class Failure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Servable:
    def __init__(self, name: str, version: int, path: Path) -> None:
        from tensorflow.core.protobuf import saved_model_pb2

        import tensorflow as tf

        self.name = name
        self.version = version
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
        graph = next(g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags)
        self.signature_defs = graph.signature_def
        self.loaded = tf.saved_model.load(str(path), tags=["serve"])
        self.functions = dict(self.loaded.signatures)

    def signature(self, name: str) -> Any:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name not in self.functions:
            raise Failure("FAILED_PRECONDITION", 'Serving signature key "%s" not found.' % name)
        return name, self.signature_defs[name]

    def run(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        import tensorflow as tf

        function = self.functions[signature_name]
        _, specs = function.structured_input_signature
        try:
            feed = {
                key: tf.constant(value, dtype=specs[key].dtype) for key, value in inputs.items()
            }
            outputs = function(**feed)
        except (TypeError, ValueError, tf.errors.InvalidArgumentError) as exc:
            raise Failure("INVALID_ARGUMENT", _reason(exc)) from None
        return {key: value.numpy() for key, value in outputs.items()}


def _reason(exc: BaseException) -> str:
    """The line of a TensorFlow error that says what was wrong (not "Graph execution error:",
    not the traceback of the Python that built the graph)."""
    text = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if not line.startswith(("Graph execution error", "Detected at node", "File ", "[[", "}}"))
        and not line.endswith(":")
    ]
    return (useful or lines or [type(exc).__name__])[-1][:500]


def _versions(base: Path) -> Dict[int, Path]:
    found = {}
    for entry in sorted(os.listdir(base)):
        if entry.isdigit():
            found[int(entry)] = base / entry
    return found


class Servables:
    def __init__(self) -> None:
        self.models: Dict[str, Dict[int, Servable]] = {}

    @classmethod
    def load(cls, config: Any) -> Servables:
        """Every version the config asks for, or the error TF Serving fails its start with."""
        servables = cls()
        failed: List[str] = []
        for model in config.model_config_list.config:
            if model.model_platform not in ("", "tensorflow"):
                raise ValueError("Invalid argument: unsupported platform %s" % model.model_platform)
            base = Path(model.base_path)
            on_disk = _versions(base) if base.is_dir() else {}
            policy = model.model_version_policy
            if policy.WhichOneof("policy_choice") == "specific":
                wanted = list(policy.specific.versions)
            else:
                wanted = sorted(on_disk)[-1:]
            servables.models[model.name] = {}
            for version in wanted:
                try:
                    if version not in on_disk:
                        raise FileNotFoundError("no version directory under %s" % base)
                    servable = Servable(model.name, version, on_disk[version])
                except Exception as exc:
                    failed.append(
                        "{name: %s version: %d} due to error: %s: %s"
                        % (model.name, version, type(exc).__name__, str(exc).splitlines()[0:1])
                    )
                    continue
                servables.models[model.name][version] = servable
        if failed:
            raise RuntimeError(
                "Unknown: %d servable(s) did not become available: {%s}"
                % (len(failed), ", ".join("{%s}" % f for f in failed))
            )
        return servables

    def describe(self) -> str:
        return "; ".join("%s %s" % (n, sorted(v)) for n, v in self.models.items())

    def get(self, name: str, version: Optional[int]) -> Servable:
        versions = self.models.get(name)
        if not versions:
            raise Failure("NOT_FOUND", "Servable not found for request: Latest(%s)" % name)
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise Failure(
                "NOT_FOUND", "Servable not found for request: Specific(%s, %d)" % (name, version)
            )
        return versions[version]

    def status(self, name: str, version: Optional[int]) -> List[int]:
        versions = self.models.get(name)
        if not versions:
            raise Failure("NOT_FOUND", "Could not find any versions of model %s" % name)
        if version is not None:
            if version not in versions:
                raise Failure(
                    "NOT_FOUND", "Could not find version %d of model %s" % (version, name)
                )
            return [version]
        return sorted(versions)


# --- the requests, as TF Serving handles them ------------------------------------------


def _spec_version(spec: Any) -> Optional[int]:
    return spec.version.value if spec.HasField("version") else None


def predict(servables: Servables, request: Any, response: Any) -> None:
    import tensorflow as tf

    servable = servables.get(request.model_spec.name, _spec_version(request.model_spec))
    name, signature = servable.signature(request.model_spec.signature_name)
    if signature.method_name not in (PREDICT, CLASSIFY, REGRESS):
        raise Failure("INTERNAL", "Expected prediction signature method_name to be one of ...")
    sent, wanted = set(request.inputs), set(signature.inputs)
    if sent != wanted:
        raise Failure(
            "INVALID_ARGUMENT",
            "input size does not match signature: %d!=%d len({%s}) != len({%s}). Sent extra: "
            "{%s}. Missing but required: {%s}."
            % (
                len(sent),
                len(wanted),
                ",".join(sorted(sent)),
                ",".join(sorted(wanted)),
                ",".join(sorted(sent - wanted)),
                ",".join(sorted(wanted - sent)),
            ),
        )
    inputs = {}
    for key, tensor in request.inputs.items():
        expected = signature.inputs[key].dtype
        if tensor.dtype != expected:
            raise Failure(
                "INVALID_ARGUMENT",
                "Expects arg[%s] to be %s but %s is provided"
                % (key, tf.dtypes.as_dtype(expected).name, tf.dtypes.as_dtype(tensor.dtype).name),
            )
        try:
            inputs[key] = tf.make_ndarray(tensor)
        except Exception as exc:
            raise Failure("INVALID_ARGUMENT", "cannot read tensor %s: %s" % (key, exc)) from None
    aliases = list(request.output_filter) or sorted(signature.outputs)
    for alias in aliases:
        if alias not in signature.outputs:
            raise Failure(
                "INVALID_ARGUMENT", "output tensor alias not found in signature: %s" % alias
            )
    outputs = servable.run(name, inputs)
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = name
    for alias in aliases:
        response.outputs[alias].CopyFrom(tf.make_tensor_proto(outputs[alias]))


def _serialized(request_input: Any) -> List[bytes]:
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in request_input.example_list.examples]
    if kind == "example_list_with_context":
        context = request_input.example_list_with_context.context.SerializeToString()
        return [
            context + e.SerializeToString()
            for e in request_input.example_list_with_context.examples
        ]
    raise Failure("INVALID_ARGUMENT", "Input is empty.")


def examples_call(servables: Servables, request: Any, method: str) -> Dict[str, Any]:
    """Run a classify/regress request; its results as TF Serving's JSON (``examples``),
    which the caller turns into the result proto."""
    from eikit.errors import EikitError
    from eikit_tensorflow import examples

    servable = servables.get(request.model_spec.name, _spec_version(request.model_spec))
    name, signature = servable.signature(request.model_spec.signature_name)
    wanted = CLASSIFY if method == "classify" else REGRESS
    if signature.method_name != wanted:
        raise Failure(
            "INVALID_ARGUMENT",
            "Expected %s signature method_name to be %s. Was: %s"
            % (
                "classification" if method == "classify" else "regression",
                wanted,
                signature.method_name,
            ),
        )
    if len(signature.inputs) != 1:
        raise Failure("INVALID_ARGUMENT", "Expected one input Tensor.")
    serialized = _serialized(request.input)
    if not serialized:
        raise Failure("INVALID_ARGUMENT", "Input is empty.")
    key = next(iter(signature.inputs))
    outputs = servable.run(name, {key: np.array(serialized, dtype=object)})
    try:
        if method == "classify":
            return examples.classify_results(outputs, len(serialized))
        return examples.regress_results(outputs, len(serialized))
    except EikitError as exc:
        raise Failure("INVALID_ARGUMENT", exc.message) from None
