"""SavedModels built in code for the TensorFlow suites (nothing is downloaded).

- ``save_half_plus_three``: TF Serving's test model ``half_plus_three`` (y = 0.5 x + 3), as
  AWS's container tests use it, rebuilt the way TF Serving's ``saved_model_half_plus_two.py``
  builds it: a TF1 graph with a predict signature (``serving_default`` and
  ``tensorflow/serving/predict``, input ``x`` of any shape), a regress signature
  (``tensorflow/serving/regress``: tf.Examples with a float feature ``x``) and a classify
  signature (``tensorflow/serving/classify``: classes ``neg``/``pos``, scores y and 2y).
- ``save_scaled``: a TF2 module, y = x * scale, with more signatures: two outputs, two int64
  inputs, strings in and out (an output named ``*_bytes`` comes back base64).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_half_plus_three(path: Path, offset: float = 3.0) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(offset, name="b")
        x = v1.placeholder(tf.float32, shape=None, name="x")
        y = tf.add(a * x, b, name="y")
        serialized = v1.placeholder(tf.string, shape=[None], name="tf_example")
        parsed = v1.io.parse_example(
            serialized, {"x": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0])}
        )
        example_y = tf.reshape(a * parsed["x"] + b, [-1])
        scores = tf.stack([example_y, 2 * example_y], axis=1)
        classes = tf.tile(tf.constant([["neg", "pos"]]), [tf.shape(example_y)[0], 1])
        build = v1.saved_model.utils.build_tensor_info
        predict = v1.saved_model.signature_def_utils.build_signature_def(
            inputs={"x": build(x)},
            outputs={"y": build(y)},
            method_name=v1.saved_model.signature_constants.PREDICT_METHOD_NAME,
        )
        regress = v1.saved_model.signature_def_utils.regression_signature_def(
            serialized, tf.reshape(example_y, [-1, 1])
        )
        classify = v1.saved_model.signature_def_utils.classification_signature_def(
            serialized, classes, scores
        )
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                session,
                [v1.saved_model.tag_constants.SERVING],
                signature_def_map={
                    "serving_default": predict,
                    "tensorflow/serving/predict": predict,
                    "tensorflow/serving/regress": regress,
                    "tensorflow/serving/classify": classify,
                },
                strip_default_attrs=True,
            )
            builder.save()


def save_scaled(path: Path, scale: float) -> None:
    import tensorflow as tf

    factor = tf.constant(scale, dtype=tf.float32)

    class Scaled(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
        def serve(self, x: Any) -> Any:
            return {"y": x * factor}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
        def two_outputs(self, x: Any) -> Any:
            return {"double": x * 2.0, "negated": -x}

        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64)]
        )
        def two_inputs(self, a: Any, b: Any) -> Any:
            return {"sum": a + b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def strings(self, s: Any) -> Any:
            return {"length": tf.strings.length(s), "echo_bytes": s}

    module = Scaled()
    tf.saved_model.save(
        module,
        str(path),
        signatures={
            "serving_default": module.serve,
            "two_outputs": module.two_outputs,
            "two_inputs": module.two_inputs,
            "strings": module.strings,
        },
    )


def save_tree(model_dir: Path) -> None:
    """model/half_plus_three/{00000123,00000124} and model/scaled/{1,2,10} (scale = the
    version: the highest, 10, serves by default; 2 would win in a text sort)."""
    for version in ("00000123", "00000124"):
        save_half_plus_three(model_dir / "half_plus_three" / version)
    for version in (1, 2, 10):
        save_scaled(model_dir / "scaled" / str(version), float(version))
