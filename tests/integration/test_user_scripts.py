"""Inference scripts written for AWS's containers run unchanged; user code sets statuses."""

from __future__ import annotations

import json

import requests

from tests.integration.conftest import expected
from tests.serving import make_wheel

AWS_STYLE = """
import json
import os

import torch

LOADS = []

def model_fn(model_dir, context):
    props = context.system_properties
    assert props["model_dir"] == model_dir
    model = torch.jit.load(os.path.join(model_dir, "model.pt"))
    model.loaded_on = context.accelerator
    return model

def input_fn(input_data, content_type, context):
    assert content_type.startswith("application/json")
    return torch.tensor(json.loads(input_data)["instances"], dtype=torch.float32)

def predict_fn(data, model, context):
    with torch.no_grad():
        return model(data)

def output_fn(prediction, accept, context):
    attrs = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
    context.set_response_header(0, "X-Echo-Attributes", attrs or "none")
    context.set_response_header(0, "X-Worker-Pid", str(os.getpid()))
    headers = context.get_all_request_header(0)
    body = {"predictions": prediction.tolist(), "device": context.device,
            "saw_accept": accept, "has_headers": "content-type" in headers}
    return json.dumps(body), "application/vnd.eikit+json"
"""


def test_aws_style_script_with_context_and_headers(tree, start):
    tree.script(AWS_STYLE)
    endpoint = start(tree)
    answer = endpoint.invoke(
        json.dumps({"instances": [[1, 2, 3, 4]]}).encode(),
        headers={"X-Amzn-SageMaker-Custom-Attributes": "trace=abc"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.eikit+json"
    assert answer.headers["x-echo-attributes"] == "trace=abc"
    body = answer.json()
    assert body == {
        "predictions": expected([[1, 2, 3, 4]]),
        "device": "cpu",
        "saw_accept": "application/json",  # missing Accept -> the default accept
        "has_headers": True,
    }


def test_transform_fn_alone(tree, start):
    tree.script(
        """
        import json
        def model_fn(model_dir):
            return {"scale": 3}
        def transform_fn(model, input_data, content_type, accept):
            value = json.loads(input_data)["x"] * model["scale"]
            return json.dumps({"y": value}), accept
        """
    )
    endpoint = start(tree)
    answer = endpoint.invoke(b'{"x": 2}', accept="application/json")
    assert answer.json() == {"y": 6}


def test_user_code_chooses_its_4xx_and_crashes_are_500(tree, start):
    tree.script(
        """
        from eikit import InferenceError
        def input_fn(input_data, content_type):
            if input_data == "reject":  # JSON arrives as str, as on AWS's containers
                raise InferenceError("field 'text' is required", status=422)
            if input_data == "crash":
                raise ValueError("secret internals")
            return [[1.0, 2.0, 3.0, 4.0]]
        """
    )
    endpoint = start(tree)
    rejected = endpoint.invoke(b"reject")
    assert rejected.status_code == 422
    assert rejected.json() == {"error": "field 'text' is required", "code": "inference_error"}
    crashed = endpoint.invoke(b"crash")
    assert crashed.status_code == 500 and "Traceback" not in crashed.text
    assert "ValueError: secret internals" in endpoint.log()
    assert endpoint.invoke(b"ok").json() == expected([[1, 2, 3, 4]])


def test_invalid_hooks_are_a_clear_start_up_error(tree, start):
    tree.script(
        """
        def transform_fn(model, data, content_type, accept):
            return data
        def predict_fn(data, model):
            return data
        """
    )
    endpoint = start(tree, ready=False)
    ping = endpoint.wait_failed()
    assert ping.status_code == 503
    assert "transform_fn" in ping.json()["error"]
    invocation = endpoint.invoke(b"[[1,2,3,4]]")
    assert invocation.status_code == 503 and "predict_fn" in invocation.json()["error"]
    assert "transform_fn replaces input_fn, predict_fn and output_fn" in endpoint.log()


def test_pre_model_and_warmup_hooks_run_once_per_worker(tree, start, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    tree.script(
        """
        import os, torch
        MARKS = %r
        def pre_model_fn(model_dir):
            open(os.path.join(MARKS, "pre-%%d" %% os.getpid()), "w").close()
        def model_fn(model_dir):
            open(os.path.join(MARKS, "model-%%d" %% os.getpid()), "w").close()
            return torch.jit.load(os.path.join(model_dir, "model.pt"))
        def model_warmup_fn(model_dir, model, context):
            model(torch.zeros(1, 4))
            open(os.path.join(MARKS, "warm-%%d" %% os.getpid()), "w").close()
        """
        % str(marks)
    )
    endpoint = start(tree, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    for _ in range(6):
        assert endpoint.invoke(b"[[1,2,3,4]]").status_code == 200
    names = sorted(p.name.split("-")[0] for p in marks.iterdir())
    assert names == ["model", "model", "pre", "pre", "warm", "warm"]


def test_requirements_are_installed_before_the_script_is_imported(tree, start, tmp_path):
    script = tree.script(
        """
        import eikit_req_probe
        def output_fn(prediction, accept):
            return str(eikit_req_probe.ANSWER)
        """
    )
    wheel = make_wheel(script.parent, "eikit_req_probe")
    (script.parent / "requirements.txt").write_text("./%s\n" % wheel.name)
    target = tmp_path / "site"
    endpoint = start(tree, {"EIKIT_REQUIREMENTS_TARGET": str(target)})
    assert endpoint.invoke(b"[[1,2,3,4]]").text == "42"
    assert (target / "eikit_req_probe.py").is_file()
    assert "requirements installed" in endpoint.log()


def test_requirements_opt_out(tree, start, tmp_path):
    script = tree.script("import eikit_req_missing\n")
    (script.parent / "requirements.txt").write_text("./does-not-exist.whl\n")
    endpoint = start(tree, {"EIKIT_INSTALL_REQUIREMENTS": "false"}, ready=False)
    ping = endpoint.wait_failed()
    assert ping.status_code == 503
    assert "eikit_req_missing" in ping.json()["error"]  # the import failed: pip never ran
    assert "installing" not in endpoint.log()


def test_program_name_from_settings(tree, start):
    tree.script("def output_fn(prediction, accept):\n    return 'custom'\n", name="serve_this.py")
    endpoint = start(tree, {"SAGEMAKER_PROGRAM": "serve_this.py"})
    assert endpoint.invoke(b"[[1,2,3,4]]").text == "custom"
    assert requests.get(endpoint.url + "/ping", timeout=5).status_code == 200
