"""The in-process path: TensorFlow in eikit's worker, answering TF Serving REST requests.

Every version of every model found (``layout.discover``) is loaded with
``tf.saved_model.load`` under the ``serve`` tag, as TF Serving loads them. Signatures are
called as TF Serving calls them: ``serving_default`` unless the body names one, inputs by
the signature's input keys, every output returned. A signature's method (predict, classify,
regress) is read from ``saved_model.pb`` (the loaded object does not keep it): ``classify``
and ``regress`` take only signatures of that method, as TF Serving does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from eikit.errors import BadRequest, ModelNotFound
from eikit_tensorflow import examples, tensors
from eikit_tensorflow.executor import Executor, check_method
from eikit_tensorflow.layout import SAVED_MODEL, Models
from eikit_tensorflow.tensors import Spec

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"
METHOD_NAMES = {
    "predict": examples.PREDICT_METHOD,
    "classify": examples.CLASSIFY_METHOD,
    "regress": examples.REGRESS_METHOD,
}


def read_signature_methods(path: Path) -> Tuple[List[str], Dict[str, str]]:
    """(the tags of the meta graph TF Serving would load, signature name -> method name)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / SAVED_MODEL).read_bytes())
    graphs = list(proto.meta_graphs)
    if not graphs:
        raise ValueError("%s holds no meta graph" % path)
    chosen = next((g for g in graphs if SERVE_TAG in g.meta_info_def.tags), graphs[0])
    methods = {name: sig.method_name for name, sig in chosen.signature_def.items()}
    return list(chosen.meta_info_def.tags), methods


class Signature:
    def __init__(self, name: str, function: Any, method: str) -> None:
        self.name = name
        self.function = function
        self.method = method or examples.PREDICT_METHOD
        _, kwargs = function.structured_input_signature
        self.inputs: Dict[str, Spec] = {
            key: Spec(spec.dtype.name, _shape(spec.shape)) for key, spec in kwargs.items()
        }
        self.dtypes = {key: spec.dtype for key, spec in kwargs.items()}


def _shape(shape: Any) -> Optional[List[Optional[int]]]:
    try:
        return list(shape.as_list())
    except ValueError:  # unknown rank
        return None


class Servable:
    """One version of one model, loaded."""

    def __init__(self, tf: Any, name: str, version: int, path: Path, device: str) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.device = device
        tags, methods = read_signature_methods(path)
        with tf.device(device):
            self.loaded = tf.saved_model.load(str(path), tags=tags or None)
        self.signatures: Dict[str, Signature] = {
            key: Signature(key, function, methods.get(key, ""))
            for key, function in self.loaded.signatures.items()
        }

    def signature(self, body: Mapping[str, Any], method: str) -> Signature:
        name = body.get("signature_name", "")
        if not isinstance(name, str):
            raise BadRequest(
                "JSON Value: %s not formatted correctly. 'signature_name' key must be a "
                "string value." % tensors._text(name)
            )
        name = name or DEFAULT_SIGNATURE
        found = self.signatures.get(name)
        if found is None:
            raise BadRequest(
                'Serving signature name: "%s" not found in signature def (model %s version %d '
                "has: %s)" % (name, self.name, self.version, ", ".join(sorted(self.signatures)))
            )
        wanted = METHOD_NAMES[method]
        if found.method != wanted:
            fitting = [s.name for s in self.signatures.values() if s.method == wanted]
            raise BadRequest(
                "Expected %s signature method_name to be %s. Was: %s (signatures of model %s "
                "version %d for %s: %s)"
                % (
                    method,
                    wanted,
                    found.method,
                    self.name,
                    self.version,
                    method,
                    ", ".join(sorted(fitting)) or "none",
                )
            )
        return found


def _check_shapes(servable: Servable, signature: Signature, arrays: Dict[str, Any]) -> None:
    """Refuse, naming both, an input whose shape the signature cannot take: TensorFlow
    would refuse it too, with a message about graph nodes."""
    for key, array in arrays.items():
        want = signature.inputs[key].shape
        have = list(getattr(array, "shape", ()))
        if want is None:
            continue
        fits = len(want) == len(have) and all(w is None or w == h for w, h in zip(want, have))
        if not fits:
            raise BadRequest(
                "input %s of signature %r (model %s version %d) takes shape %s, got %s"
                % (
                    key,
                    signature.name,
                    servable.name,
                    servable.version,
                    "[%s]" % ", ".join("?" if w is None else str(w) for w in want),
                    have,
                )
            )


def _reason(exc: BaseException) -> str:
    """The line of a TensorFlow error that says what was wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("[[", "Detected at", "File "))]
    return (useful[-1] if useful else type(exc).__name__)[:500]


def _call(tf: Any, servable: Servable, signature: Signature, arrays: Dict[str, Any]) -> Dict:
    """Run a signature; what TensorFlow refuses about the inputs is the client's error."""
    _check_shapes(servable, signature, arrays)
    try:
        with tf.device(servable.device):
            feed = {
                key: tf.constant(value, dtype=signature.dtypes[key])
                for key, value in arrays.items()
            }
            outputs = signature.function(**feed)
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as exc:
        raise BadRequest(
            "signature %r of model %s version %d refused the input: %s (inputs: %s)"
            % (
                signature.name,
                servable.name,
                servable.version,
                _reason(exc),
                ", ".join(
                    "%s %s%s" % (k, s.dtype, s.shape) for k, s in sorted(signature.inputs.items())
                ),
            )
        ) from None
    if not isinstance(outputs, dict):
        outputs = {"output_0": outputs}
    return {key: value.numpy() for key, value in outputs.items()}


class InProcessExecutor(Executor):
    def __init__(self, models: Models, device: str = "/CPU:0", reason: str = "") -> None:
        import tensorflow as tf

        self.tf = tf
        self.device = device
        self.reason = reason
        self.servables: Dict[str, Dict[int, Servable]] = {}
        for name, versions in models.items():
            self.servables[name] = {}
            for version, path in sorted(versions.items()):
                self.servables[name][version] = Servable(tf, name, version, path, device)
                log.info("loaded model %s version %d from %s on %s", name, version, path, device)

    def models(self) -> Dict[str, List[int]]:
        return {name: sorted(versions) for name, versions in self.servables.items()}

    def describe(self) -> str:
        return "in-process TensorFlow %s on %s%s" % (
            self.tf.__version__,
            self.device,
            " (%s)" % self.reason if self.reason else "",
        )

    def servable(self, model: str, version: Optional[int]) -> Servable:
        number = self.resolve(model, version)
        return self.servables[model][number]

    def request(
        self, model: str, version: Optional[int], method: str, body: Dict[str, Any]
    ) -> Dict[str, Any]:
        check_method(method)
        servable = self.servable(model, version)
        if not isinstance(body, dict):
            raise BadRequest("JSON Value: %s Is not object" % tensors._text(body))
        signature = servable.signature(body, method)
        if method == "predict":
            form, arrays = tensors.request_arrays(body, signature.inputs)
            outputs = _call(self.tf, servable, signature, arrays)
            if form == "row":
                return tensors.row_answer(outputs)
            return tensors.columnar_answer(outputs)
        serialized = examples.serialized_examples(body, method)
        if list(signature.inputs) != [examples.INPUTS]:
            raise BadRequest(
                "%s signature %r must take one input named 'inputs' (it takes: %s)"
                % (method, signature.name, ", ".join(sorted(signature.inputs)))
            )
        batch = np.array(serialized, dtype=object)
        outputs = _call(self.tf, servable, signature, {examples.INPUTS: batch})
        if method == "classify":
            return examples.classify_results(outputs, len(serialized))
        return examples.regress_results(outputs, len(serialized))

    def close(self) -> None:
        self.servables = {}


__all__ = ["InProcessExecutor", "ModelNotFound"]
