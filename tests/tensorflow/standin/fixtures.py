"""What the TF Serving path's tests share: the stand-in binary as an executable, SavedModels
with every kind of signature, and the requests to send both paths."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

SERVER = Path(__file__).resolve().parent / "server.py"


def write_binary(folder: Path, name: str = "tensorflow_model_server") -> Path:
    """An executable ``name`` in ``folder`` that runs the stand-in with this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text('#!/bin/sh\nexec "%s" "%s" "$@"\n' % (sys.executable, SERVER))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def records(folder: Path) -> List[Dict[str, Any]]:
    """What each stand-in started with EIKIT_STANDIN_RECORD=folder wrote, oldest first."""
    if not folder.is_dir():
        return []
    found = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return sorted(found, key=lambda r: os.stat(folder / ("%d.json" % r["pid"])).st_mtime)


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail("timed out after %.0fs waiting for %s" % (timeout, what))


# --- models ----------------------------------------------------------------------------

FEATURES = 4


def _set_method(path: Path, methods: Dict[str, str]) -> None:
    """TF2 saves every signature as a predict one; classify/regress signatures get their
    method name written into saved_model.pb, as TF1's builders wrote it."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    for graph in proto.meta_graphs:
        for name, method in methods.items():
            graph.signature_def[name].method_name = method
    (path / "saved_model.pb").write_bytes(proto.SerializeToString())


def save_model(path: Path, bias: float = 0.5) -> Path:
    """A SavedModel with: ``serving_default`` (x [None, 4] float -> y = [x0, x1+x2+x3+bias]),
    ``multi`` (two inputs, two outputs), ``strings`` (string input; int and ``_bytes``
    outputs), ``classify`` and ``regress`` (serialized tf.Example in)."""
    import tensorflow as tf

    weight = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    spec = {"x": tf.io.FixedLenFeature([2], tf.float32), "k": tf.io.FixedLenFeature([1], tf.int64)}

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
        def predict(self, x: Any) -> Any:
            return {"y": tf.matmul(x, weight) + tf.constant([0.0, bias])}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None], tf.int64, name="b"),
            ]
        )
        def multi(self, a: Any, b: Any) -> Any:
            return {"total": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32), "twice": a * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def strings(self, text: Any) -> Any:
            return {"length": tf.strings.length(text), "echo_bytes": text}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs: Any) -> Any:
            parsed = tf.io.parse_example(inputs, spec)
            scores = tf.nn.softmax(parsed["x"] * tf.cast(parsed["k"], tf.float32))
            classes = tf.tile(tf.constant([["low", "high"]]), [tf.shape(inputs)[0], 1])
            return {"classes": classes, "scores": scores}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs: Any) -> Any:
            parsed = tf.io.parse_example(inputs, spec)
            return {"outputs": tf.reduce_sum(parsed["x"], axis=1) / 3.0}

    model = Model()
    signatures = {
        "serving_default": model.predict,
        "multi": model.multi,
        "strings": model.strings,
        "classify": model.classify,
        "regress": model.regress,
    }
    path.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(model, str(path), signatures=signatures)
    _set_method(
        path, {"classify": "tensorflow/serving/classify", "regress": "tensorflow/serving/regress"}
    )
    return path


def model_tree(root: Path, versions: Optional[Dict[str, List[int]]] = None) -> Path:
    """``root/model`` as a SageMaker model dir: by default ``model/1`` and ``model/2`` (the
    bias differs, so version 2 answers differently) and a second model ``other/7``."""
    versions = versions or {"half": [1, 2], "other": [7]}
    model_dir = root / "model"
    for name, numbers in versions.items():
        for number in numbers:
            save_model(model_dir / name / ("%d" % number), bias=0.5 * number)
    return model_dir


# --- requests: (model, version, method, body) -----------------------------------------

REQUESTS: List[Any] = [
    ("half", None, "predict", {"instances": [[1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4]]}),
    ("half", 1, "predict", {"instances": [[1, 2, 3, 4]]}),
    ("half", 2, "predict", {"inputs": [[1.0, 2.0, 3.0, 4.0]]}),
    ("half", None, "predict", {"instances": [{"x": [1.0, 2.0, 3.0, 4.0]}]}),
    ("half", None, "predict", {"inputs": {"x": [[0.5, 0.25, 0.125, 1e-7]]}}),
    (
        "half",
        None,
        "predict",
        {"signature_name": "multi", "instances": [{"a": [1.5, 2.5], "b": 3}]},
    ),
    ("half", None, "predict", {"signature_name": "multi", "inputs": {"a": [[1.0, 2.0]], "b": [5]}}),
    (
        "half",
        None,
        "predict",
        {"signature_name": "strings", "instances": ["héllo", {"b64": "AAEC"}]},
    ),
    ("half", None, "predict", {"signature_name": "strings", "inputs": ["a", "bc"]}),
    ("other", None, "predict", {"instances": [[0.0, 0.0, 0.0, 0.0]]}),
    (
        "half",
        None,
        "classify",
        {"signature_name": "classify", "examples": [{"x": [1.0, 2.0], "k": 1}]},
    ),
    (
        "half",
        None,
        "classify",
        {
            "signature_name": "classify",
            "context": {"k": 2},
            "examples": [{"x": [0.5, 1.5]}, {"x": [3.0, 1.0]}],
        },
    ),
    ("half", 2, "regress", {"signature_name": "regress", "examples": [{"x": [1.0, 2.0], "k": 1}]}),
]

# requests TF Serving refuses, and the status each gets on both paths
REFUSED: List[Any] = [
    ("nope", None, "predict", {"instances": [[1.0, 2.0, 3.0, 4.0]]}, 404),
    ("half", 9, "predict", {"instances": [[1.0, 2.0, 3.0, 4.0]]}, 404),
    ("half", None, "predict", {"signature_name": "nope", "instances": [[1.0, 2.0, 3.0, 4.0]]}, 400),
    ("half", None, "predict", {"instances": [["a", "b", "c", "d"]]}, 400),
    ("half", None, "predict", {"instances": [[1.0, 2.0], [1.0, 2.0, 3.0]]}, 400),
    ("half", None, "predict", {"instances": [[1.0, 2.0, 3.0]]}, 400),
    ("half", None, "predict", {"instances": []}, 400),
    ("half", None, "predict", {"rows": [[1.0, 2.0, 3.0, 4.0]]}, 400),
    ("half", None, "predict", {"signature_name": "multi", "instances": [[1.0, 2.0]]}, 400),
    ("half", None, "predict", {"signature_name": "multi", "inputs": {"a": [[1.0, 2.0]]}}, 400),
    ("half", None, "classify", {"examples": [{"x": [1.0, 2.0]}]}, 400),
    ("half", None, "classify", {"signature_name": "classify", "examples": []}, 400),
    ("half", None, "regress", {"signature_name": "regress", "examples": [{"x": [1.0, "a"]}]}, 400),
]
