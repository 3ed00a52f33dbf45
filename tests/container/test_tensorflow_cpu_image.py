"""The tensorflow cpu image, built offline and run as SageMaker runs it: /opt/ml/model
mounted, ``serve``, host network. It serves in-process (TensorFlow in the worker).

The image is built here from ``docker/tensorflow/Dockerfile`` on the debootstrap base
(``scripts/make-base-image``) with a wheelhouse of its own (``scripts/make-wheelhouse
--no-torch .wheelhouse/tensorflow tensorflow-cpu==2.21.0 requests``), so nothing is pulled
or downloaded from an index. The SavedModel is built by the image's own TensorFlow (the
test environment that runs the container tests has none).

Settings (environment): EIKIT_CONTAINER_TEST_TF_IMAGE uses that image instead of building.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import LEAN, cpu_test_image, run_in_image

pytestmark = pytest.mark.container

TF_TAG = "eikit-test:tensorflow-cpu"
TF_WHEELHOUSE = ".wheelhouse/tensorflow"

SAVE_MODEL = """
import sys
import tensorflow as tf

weight = tf.constant([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
bias = tf.constant([0.0, 0.5])


class Linear(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.matmul(x, weight, transpose_b=True) + bias}


module = Linear()
for version in ("1", "2"):
    path = sys.argv[1] + "/" + version
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
"""

SCRIPT = """
import json


def input_handler(data, context):
    lines = data.read().decode("utf-8").splitlines()
    rows = [[float(v) for v in line.split(",")] for line in lines]
    return json.dumps({"instances": rows})


def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode("utf-8"))
    predictions = json.loads(response.content.decode("utf-8"))["predictions"]
    return json.dumps({"rows": predictions, "model": context.model_name}), "application/json"
"""


@pytest.fixture(scope="module")
def tensorflow_cpu_image(engine: Any) -> str:
    """The tensorflow cpu image (``EIKIT_CONTAINER_TEST_TF_IMAGE``: a prebuilt one)."""
    return cpu_test_image(
        engine,
        "tensorflow",
        TF_TAG,
        "EIKIT_CONTAINER_TEST_TF_IMAGE",
        TF_WHEELHOUSE,
        ["--no-torch", "tensorflow-cpu==2.21.0", "requests"],
    )


@pytest.fixture(scope="module")
def saved_model(engine: Any, tensorflow_cpu_image: str, tmp_path_factory: Any) -> Path:
    """model/1 and model/2: the linear model, saved by the image's TensorFlow."""
    root = tmp_path_factory.mktemp("tf-image-model")
    model = root / "model"
    model.mkdir()
    (root / "save.py").write_text(SAVE_MODEL)
    os.chmod(str(model), 0o777)
    run_in_image(
        engine,
        tensorflow_cpu_image,
        ["python", "/work/save.py", "/work/model"],
        {str(root): "/work"},
    )
    assert (model / "2" / "saved_model.pb").is_file()
    return model


ENV = dict(LEAN, EIKIT_FRAMEWORK="tensorflow")


def test_image_reports_the_in_process_path(engine: Any, tensorflow_cpu_image: str) -> None:
    output = run_in_image(engine, tensorflow_cpu_image, ["eikit", "detect", "--json"], {})
    report = json.loads(output[output.index("{") :])
    assert report["framework"] == "tensorflow" and report["chosen"] == "cpu"
    assert report["execution"] == "in-process", report


def test_default_handling_serves_tf_serving_requests(
    eikit_endpoint: Any, tensorflow_cpu_image: str, saved_model: Path
) -> None:
    endpoint = eikit_endpoint(saved_model, image=tensorflow_cpu_image, env=ENV)
    rows = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]
    answer = endpoint.invoke({"instances": rows}, accept="application/json")
    assert answer.status == 200, answer.text
    assert answer.json() == {"predictions": [[1.0, 9.5], [0.0, 0.5]]}
    csv = endpoint.invoke(b"1,2,3,4", content_type="text/csv")
    assert csv.json() == {"predictions": [[1.0, 9.5]]}
    pinned = endpoint.invoke(
        {"inputs": rows[:1]},
        headers={"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-version=1"},
    )
    assert pinned.json() == {"outputs": [[1.0, 9.5]]}
    unknown = endpoint.invoke(
        {"instances": rows},
        headers={"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-version=7"},
    )
    assert unknown.status == 404 and "1, 2" in unknown.json()["error"]


def test_input_and_output_handler_script(
    eikit_endpoint: Any, tensorflow_cpu_image: str, saved_model: Path, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(textwrap.dedent(SCRIPT))
    endpoint = eikit_endpoint(saved_model, code, image=tensorflow_cpu_image, env=ENV)
    answer = endpoint.invoke(b"1,2,3,4\n0,0,0,0", content_type="text/csv")
    assert answer.status == 200, answer.text
    assert answer.json() == {"rows": [[1.0, 9.5], [0.0, 0.5]], "model": None}


def test_multi_model_mode_serves_saved_models_by_name(
    eikit_endpoint: Any, engine: Any, tensorflow_cpu_image: str, saved_model: Path, tmp_path: Path
) -> None:
    """The label's claim: SAGEMAKER_MULTI_MODEL=true, two SavedModel folders (each with its
    versions) loaded through POST /models, invoked by name, one unloaded."""
    labels = engine.inspect_image(tensorflow_cpu_image)["Config"]["Labels"]
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    models = tmp_path / "models"
    for name in ("first", "second"):
        shutil.copytree(str(saved_model), str(models / name))
    endpoint = eikit_endpoint(models, image=tensorflow_cpu_image, env=ENV, multi_model=True)
    assert sorted(endpoint.models()) == ["first", "second"]
    rows = [[1.0, 2.0, 3.0, 4.0]]
    for name in ("first", "second"):
        answer = endpoint.invoke({"instances": rows}, target_model=name)
        assert answer.status == 200, answer.text
        assert answer.json() == {"predictions": [[1.0, 9.5]]}
    assert endpoint.unload_model("first").status == 200
    assert endpoint.invoke({"instances": rows}, target_model="first").status == 404
