"""The mxnet cpu image, built offline and run as SageMaker runs it: /opt/ml/model mounted,
`serve`, host network. The models are made by the image's own mxnet (this environment has
none): a Module checkpoint served by the default hooks, and a Gluon export behind a script
written for AWS's EI container (``mx.eia()`` in model_fn)."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.container.conftest import ROOT, cpu_test_image, run_in_image

pytestmark = pytest.mark.container
TEST_TAG = "eikit-test:mxnet-cpu"
ROWS = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
EXPECTED = [[1.0, 9.5], [5.0, 21.5]]  # y = [x0, x1 + x2 + x3 + 0.5]

MAKE_MODELS = """
import json, mxnet as mx
W = mx.nd.array([[1, 0, 0, 0], [0, 1, 1, 1]]); B = mx.nd.array([0, 0.5])
fc = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2, name="fc")
mod = mx.mod.Module(fc, data_names=["data"], label_names=None)
mod.bind(data_shapes=[("data", (1, 4))], for_training=False)
mod.set_params({"fc_weight": W, "fc_bias": B}, {})
mod.save_checkpoint("/out/module/model", 0)
json.dump([{"name": "data", "shape": [1, 4]}], open("/out/module/model-shapes.json", "w"))
net = mx.gluon.nn.Dense(2, in_units=4); net.initialize()
net.weight.set_data(W); net.bias.set_data(B); net.hybridize(); net(mx.nd.zeros((1, 4)))
net.export("/out/gluon/linear", 0)
"""

EI_SCRIPT = """
import json
import os

import mxnet as mx


def model_fn(model_dir):
    return mx.gluon.SymbolBlock.imports(
        os.path.join(model_dir, "linear-symbol.json"), ["data"],
        os.path.join(model_dir, "linear-0000.params"), ctx=mx.eia())


def input_fn(request_body, content_type):
    return mx.nd.array(json.loads(request_body)["instances"])


def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction.asnumpy().tolist(),
                       "mxnet": mx.__version__}), accept
"""


@pytest.fixture(scope="session")
def mxnet_cpu_image(engine: Any) -> str:
    """The mxnet cpu image (``EIKIT_CONTAINER_TEST_MXNET_IMAGE``: a prebuilt one); mxnet's
    wheels are the pins in docker/mxnet/wheelhouse.txt."""
    pins = (ROOT / "docker" / "mxnet" / "wheelhouse.txt").read_text().split("\n")
    pins = [line.strip() for line in pins if line.strip() and not line.startswith("#")]
    return cpu_test_image(
        engine,
        "mxnet",
        TEST_TAG,
        "EIKIT_CONTAINER_TEST_MXNET_IMAGE",
        wheelhouse_args=["--no-torch", *pins],
    )


@pytest.fixture(scope="session")
def models(engine: Any, mxnet_cpu_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """module/ (a Module checkpoint) and gluon/ (an export), made by the image's mxnet."""
    root = tmp_path_factory.mktemp("mxnet-models")
    (root / "module").mkdir()
    (root / "gluon").mkdir()
    run_in_image(engine, mxnet_cpu_image, ["python", "-c", MAKE_MODELS], {str(root): "/out"})
    return root


@pytest.fixture(scope="module")
def default_endpoint(eikit_session_endpoint: Any, mxnet_cpu_image: str, models: Path, lean_env):
    return eikit_session_endpoint(models / "module", image=mxnet_cpu_image, env=lean_env)


@pytest.fixture(scope="module")
def script_endpoint(
    eikit_session_endpoint: Any,
    mxnet_cpu_image: str,
    models: Path,
    lean_env,
    tmp_path_factory: pytest.TempPathFactory,
):
    code = tmp_path_factory.mktemp("mxnet-code")
    (code / "inference.py").write_text(textwrap.dedent(EI_SCRIPT))
    return eikit_session_endpoint(models / "gluon", code, image=mxnet_cpu_image, env=lean_env)


def test_labels_and_framework(engine: Any, mxnet_cpu_image: str) -> None:
    config = engine.inspect_image(mxnet_cpu_image)["Config"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    assert config["Cmd"] == ["serve"]
    assert "EIKIT_FRAMEWORK=mxnet" in config["Env"]


def test_default_hooks_serve_a_module_checkpoint(default_endpoint: Any) -> None:
    answer = default_endpoint.invoke(ROWS, accept="application/json")
    assert answer.status == 200, answer.text
    assert answer.json() == EXPECTED
    buffer = io.BytesIO()
    np.save(buffer, np.array(ROWS, dtype=np.float32))
    answer = default_endpoint.invoke(buffer.getvalue(), "application/x-npy", "text/csv")
    assert answer.status == 200 and answer.text == "1.0,9.5\n5.0,21.5\n", answer.text
    wrong = default_endpoint.invoke([[1.0, 2.0, 3.0]])
    assert wrong.status == 400, wrong.text
    assert "Traceback" not in wrong.text
    assert "loaded MXNet Module" in default_endpoint.logs()


def test_an_ei_script_runs_unchanged_on_the_cpu_image(script_endpoint: Any) -> None:
    answer = script_endpoint.invoke({"instances": ROWS})
    assert answer.status == 200, answer.text
    assert answer.json() == {"predictions": EXPECTED, "mxnet": "1.9.1"}
    assert "the script called mx.eia(): no EI accelerator here" in script_endpoint.logs()


def test_multi_model_mode_serves_both_layouts(
    eikit_endpoint: Any, mxnet_cpu_image: str, models: Path, lean_env
) -> None:
    """The label's claim: SAGEMAKER_MULTI_MODEL=true, a Module and a Gluon export loaded
    side by side through POST /models, invoked by name, one unloaded."""
    endpoint = eikit_endpoint(models, image=mxnet_cpu_image, env=lean_env, multi_model=True)
    assert sorted(endpoint.models()) == ["gluon", "module"]
    for name in ("gluon", "module"):
        answer = endpoint.invoke(ROWS, accept="application/json", target_model=name)
        assert answer.status == 200, answer.text
        assert answer.json() == EXPECTED
    assert endpoint.unload_model("gluon").status == 200
    assert endpoint.invoke(ROWS, target_model="gluon").status == 404
