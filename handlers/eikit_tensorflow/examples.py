"""Classify and regress requests: JSON examples as serialized ``tf.train.Example`` protos,
built as TF Serving builds them (``json_tensor.cc``, ``MakeExampleFromJsonObject``), and the
signatures' outputs as TF Serving's ``{"results": ...}``.

A feature's JSON value is one value or a list of them: an integer (or a bool, as 1/0) goes
to ``int64_list``, a number with a fraction or exponent to ``float_list``, a string or a
``{"b64": ...}`` object to ``bytes_list``; mixing kinds in one feature, nulls, nested lists
and other objects are refused. With a ``context``, each example is the context with the
example's own features over it (TF Serving serializes the context, then the example).

TF Serving takes ``1.0`` as a float and ``1`` as an integer; Python's ``json`` keeps that
distinction (float vs int), so the rule carries over.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from eikit.errors import BadRequest
from eikit_tensorflow.tensors import _b64decode, _is_b64, _text, float32_values

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"
INPUTS = "inputs"
CLASSES = "classes"
SCORES = "scores"
OUTPUTS = "outputs"

_KINDS = {"int64_list": "int64", "float_list": "float", "bytes_list": "bytes"}


def _kind_of(value: Any, feature: str) -> str:
    if isinstance(value, (bool, int)):
        return "int64_list"
    if isinstance(value, float):
        return "float_list"
    if isinstance(value, str) or _is_b64(value):
        return "bytes_list"
    raise BadRequest(
        "Feature: %s has element with unexpected JSON type: %s" % (feature, type(value).__name__)
    )


def _feature(values: List[Any], name: str, feature_pb2: Any) -> Any:
    feature = feature_pb2.Feature()
    kind: Optional[str] = None
    items = []
    for value in values:
        this = _kind_of(value, name)
        if kind is not None and this != kind:
            raise BadRequest(
                "Unexpected element type in feature: %s expecting type: %s" % (name, _KINDS[kind])
            )
        kind = this
        if this == "bytes_list":
            items.append(_b64decode(value) if isinstance(value, dict) else value.encode("utf-8"))
        elif this == "int64_list":
            number = int(value)
            if not -(2**63) <= number < 2**63:
                raise BadRequest("Feature: %s has uint64 element. Only int64 is supported." % name)
            items.append(number)
        else:
            if abs(value) > float(np.finfo(np.float32).max) and np.isfinite(value):
                raise BadRequest(
                    "Cannot convert JSON value: %s to float without loss of precision." % value
                )
            items.append(value)
    if kind is not None:
        getattr(feature, kind).value.extend(items)
    return feature


def make_example(value: Any, example_pb2: Any, feature_pb2: Any) -> Any:
    if not isinstance(value, dict):
        raise BadRequest(
            "Example must be JSON object but got JSON %s" % type(value).__name__.capitalize()
        )
    example = example_pb2.Example()
    for name, content in value.items():
        values = content if isinstance(content, list) else [content]
        example.features.feature[name].CopyFrom(_feature(values, name, feature_pb2))
    return example


def serialized_examples(body: Dict[str, Any], method: str) -> List[bytes]:
    """The request's examples, serialized, each over the context when there is one."""
    from tensorflow.core.example import example_pb2, feature_pb2

    context = b""
    if "context" in body:
        context = make_example(body["context"], example_pb2, feature_pb2).SerializeToString()
    if "examples" not in body:
        raise BadRequest("When method is %s, key 'examples' is expected and was not found" % method)
    examples = body["examples"]
    if not isinstance(examples, list):
        raise BadRequest("Expecting 'examples' value to be an list/array")
    if not examples:
        raise BadRequest("'examples' value is an empty array")
    return [
        context + make_example(item, example_pb2, feature_pb2).SerializeToString()
        for item in examples
    ]


def classify_results(outputs: Dict[str, Any], count: int) -> Dict[str, Any]:
    """``{"results": [[[label, score], ...], ...]}``, one list per example, from a classify
    signature's ``classes`` and/or ``scores`` (a missing one: label "" or score 0.0, as the
    ClassificationResult proto defaults them)."""
    classes = outputs.get(CLASSES)
    scores = outputs.get(SCORES)
    if classes is None and scores is None:
        raise BadRequest("classify signature has neither a 'classes' nor a 'scores' output")
    shape = None
    for name, array in ((CLASSES, classes), (SCORES, scores)):
        if array is None:
            continue
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[0] != count:
            raise BadRequest(
                "Expected Tensor shape: [%d ?] but got %s for output %r"
                % (count, list(array.shape), name)
            )
        if shape is not None and shape != array.shape:
            raise BadRequest(
                "Tensors class and score should match in shape, but had %s and %s"
                % (list(shape), list(array.shape))
            )
        shape = array.shape
    assert shape is not None
    labels = (
        [[_label(item) for item in row] for row in np.asarray(classes).tolist()]
        if classes is not None
        else [[""] * shape[1] for _ in range(shape[0])]
    )
    values = (
        np.reshape(float32_values(np.asarray(scores, dtype=np.float32)), shape).tolist()
        if scores is not None
        else [[0.0] * shape[1] for _ in range(shape[0])]
    )
    return {
        "results": [
            [[label, score] for label, score in zip(label_row, score_row)]
            for label_row, score_row in zip(labels, values)
        ]
    }


def _label(item: Any) -> str:
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    return str(item)


def regress_results(outputs: Dict[str, Any], count: int) -> Dict[str, Any]:
    """``{"results": [value, ...]}``, one float per example, from ``outputs``."""
    if OUTPUTS not in outputs:
        raise BadRequest("regress signature has no 'outputs' output")
    array = np.asarray(outputs[OUTPUTS])
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.shape[0] != count:
        raise BadRequest(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            "but got %s" % list(array.shape)
        )
    if array.dtype.kind != "f":
        raise BadRequest("Expected output Tensor of DT_FLOAT, got %s" % array.dtype)
    return {"results": float32_values(array.astype(np.float32))}


__all__ = ["serialized_examples", "classify_results", "regress_results", "_text"]
