"""eikit.testing: request helpers, and the fixture against a real ``serve`` process."""

from __future__ import annotations

import importlib.util
import io
import json
import textwrap
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from eikit.testing import EndpointError, EndpointFactory, Response, encode_body, start_endpoint

# Serving a model needs a runtime, and the runtime its framework: not in the core environment.
serves = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="serves a model with the pytorch runtime"
)


def test_encode_body_by_type() -> None:
    assert encode_body(b"\x00") == (b"\x00", "application/octet-stream")
    assert encode_body("a,b") == (b"a,b", "text/plain")
    assert encode_body({"x": [1, 2]}) == (b'{"x": [1, 2]}', "application/json")
    data, kind = encode_body(np.arange(3, dtype=np.float32))
    assert kind == "application/x-npy"
    assert np.load(io.BytesIO(data)).tolist() == [0.0, 1.0, 2.0]
    # An array sent as JSON when asked for.
    assert encode_body([1.5], "application/json")[1] == "application/json"


def test_response_helpers() -> None:
    answer = Response(200, {"Content-Type": "application/json"}, b'{"a": 1}')
    assert answer.json() == {"a": 1}
    assert answer.content_type == "application/json"
    assert answer.header("content-type") == "application/json"
    assert answer.text == '{"a": 1}'


SCRIPT = """
import json

def model_fn(model_dir):
    return {"scale": 2}

def transform_fn(model, body, content_type, accept):
    return json.dumps({"y": json.loads(body)["x"] * model["scale"]}), "application/json"
"""


@pytest.fixture
def eikit_endpoint() -> Iterator[EndpointFactory]:
    """What the plugin's fixture of that name yields (the plugin need not be installed)."""
    factory = EndpointFactory(None)
    yield factory
    factory.stop_all()


@pytest.fixture
def script_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "code" / "inference.py").write_text(textwrap.dedent(SCRIPT))
    return model


@serves
def test_fixture_serves_a_process(eikit_endpoint, script_model: Path) -> None:
    endpoint = eikit_endpoint(script_model, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"})
    assert endpoint.mode == "process"
    assert endpoint.ping() == 200
    answer = endpoint.invoke({"x": 21})
    assert answer.status == 200, answer.text
    assert answer.json() == {"y": 42}
    assert endpoint.stop() == 0
    assert endpoint.stop() == 0  # twice is fine
    assert "eikit serving" in endpoint.logs()  # kept after the stop


@serves
def test_a_server_that_fails_to_start_raises_with_its_log(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "code" / "inference.py").write_text("raise SystemExit('broken on purpose')\n")
    with pytest.raises(EndpointError, match="broken on purpose"):
        start_endpoint(
            model,
            env={
                "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            },
            startup_timeout=60,
        )


@serves
def test_json_helper_roundtrip(eikit_endpoint, script_model: Path) -> None:
    endpoint = eikit_endpoint(script_model, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"})
    answer = endpoint.request(
        "POST", "/invocations", json.dumps({"x": 1}).encode(), {"Content-Type": "application/json"}
    )
    assert answer.json() == {"y": 2}


@serves
def test_fixture_serves_a_folder_of_models(eikit_endpoint, tmp_path: Path) -> None:
    models = tmp_path / "models"
    for name, scale in (("double", 2), ("triple", 3)):
        code = models / name / "code"
        code.mkdir(parents=True)
        (code / "inference.py").write_text(SCRIPT.replace('"scale": 2', '"scale": %d' % scale))
    endpoint = eikit_endpoint(models, multi_model=True, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"})
    assert sorted(endpoint.models()) == ["double", "triple"]
    assert endpoint.invoke({"x": 7}, target_model="double").json() == {"y": 14}
    assert endpoint.invoke({"x": 7}, target_model="triple").json() == {"y": 21}
    assert endpoint.unload_model("double").status == 200
    assert endpoint.invoke({"x": 7}, target_model="double").status == 404
    assert endpoint.load_model("double").status == 200  # by name: the folder's model
    assert endpoint.invoke({"x": 1}, target_model="double").json() == {"y": 2}


@serves
def test_a_folder_of_models_that_does_not_load_raises_with_its_log(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "broken" / "code").mkdir(parents=True)
    (models / "broken" / "code" / "inference.py").write_text(
        "def model_fn(model_dir):\n    raise ValueError('no weights on purpose')\n"
    )
    with pytest.raises(EndpointError, match="no weights on purpose"):
        start_endpoint(models, multi_model=True, startup_timeout=60)
