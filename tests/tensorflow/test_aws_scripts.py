"""A corpus of inference scripts written for AWS's TensorFlow Serving container
(``aws_scripts/``, each naming the pattern it follows: AWS's own test scripts, the SDK docs'
handlers), each served unchanged by a real server over the two-model tree and checked against
the answers AWS's container gives.

Known differences, on purpose: where the script re-raises TF Serving's refusal of the body
(``output_handler``: ``raise ValueError(data.content)``), AWS answered 500; eikit answers TF
Serving's own 4xx, the message naming the script's exception."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest

from tests.serving import Endpoint
from tests.tensorflow.helpers import post, served
from tests.tensorflow.models import save_tree

SCRIPTS = Path(__file__).parent / "aws_scripts"
HALF = "tfs-model-name=half_plus_three"
LIB = {"lib/dummy_module/__init__.py": "__version__ = '0.1'\n"}


def _wheel(code: Path, name: str) -> str:
    dist = "%s-1.0.dist-info" % name
    path = code / ("%s-1.0-py3-none-any.whl" % name)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("%s.py" % name, "ANSWER = 41 + 1\n")
        wheel.writestr(dist + "/METADATA", "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % name)
        wheel.writestr(
            dist + "/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(dist + "/RECORD", "")
    return "./%s\n" % path.name


def _with_requirements(model_dir: Path) -> None:
    save_tree(model_dir)
    code = model_dir / "code"
    code.mkdir()
    (code / "requirements.txt").write_text(_wheel(code, "eikit_tf_req_probe"))


def start(
    tmp_path: Path, script: str, save: Callable[[Path], None] = save_tree, files=None, env=None
):
    source = (SCRIPTS / (script + ".py")).read_text()
    return served(tmp_path, save, env=env, script=source, files=files)


def ok(response) -> object:
    assert response.status_code == 200, response.text
    return response.json()


def check_passthrough(endpoint: Endpoint) -> None:
    """AWS test_pre_post_processing: the same answers for JSON, CSV and both versions."""
    expected = {"predictions": [3.5, 4.0, 5.5]}
    assert ok(post(endpoint, '{"instances": [1.0, 2.0, 5.0]}', attributes=HALF)) == expected
    assert ok(post(endpoint, "1.0,2.0,5.0", "text/csv", HALF)) == expected
    for version in ("123", "124"):
        attributes = HALF + ",tfs-model-version=" + version
        assert ok(post(endpoint, {"instances": [1.0, 2.0, 5.0]}, attributes=attributes)) == expected
    unsupported = post(endpoint, "aW1hZ2UgYnl0ZXM=", "unsupported-type", HALF)
    assert unsupported.status_code == 500 and "unsupported content type" in unsupported.text
    # AWS: 500 "document is empty"; eikit: TF Serving's 400 for the client's empty body.
    empty = post(endpoint, "", attributes=HALF)
    assert empty.status_code == 400 and "document is empty" in empty.text, empty.text
    bad = post(endpoint, '{"instances": ["]["]}', attributes=HALF)
    assert bad.status_code == 400 and "is not of expected type: float" in bad.text, bad.text
    assert "Traceback" not in bad.text


CHECKS: Dict[str, Callable[[Endpoint], None]] = {}


def check(name: str):
    def register(function):
        CHECKS[name] = function
        return function

    return register


check("input_output_passthrough")(check_passthrough)
check("handler_requests_post")(check_passthrough)


@check("handler_with_lib")
def _lib(endpoint: Endpoint) -> None:
    assert ok(post(endpoint, {"instances": [1.0]})) == {"predictions": [3.5], "dummy_module": "0.1"}


@check("handler_with_requirements")
def _requirements(endpoint: Endpoint) -> None:
    assert ok(post(endpoint, {"instances": [1.0]})) == {"predictions": [3.5], "probe": 42}


@check("handler_with_lib_and_requirements")
def _lib_and_requirements(endpoint: Endpoint) -> None:
    # The script itself fails (500) if requirements.txt was installed.
    assert ok(post(endpoint, {"instances": [1.0]})) == {"predictions": [3.5], "dummy_module": "0.1"}
    assert any(
        "ignoring" in line and line.endswith("code/requirements.txt")
        for line in endpoint.log().splitlines()
    ), endpoint.log()


@check("csv_input_handler")
def _csv(endpoint: Endpoint) -> None:
    as_csv = post(endpoint, "1,2\n3,4\n", "text/csv", HALF, accept="text/csv")
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text == "3.5,4.0\n4.5,5.0\n"
    assert ok(post(endpoint, "1,2\n3,4\n", "text/csv", HALF)) == [[3.5, 4.0], [4.5, 5.0]]


@check("context_fields")
def _context(endpoint: Endpoint) -> None:
    attributes = "tfs-model-name=scaled,tfs-model-version=2"
    fields = ok(post(endpoint, b"abc", "text/plain", attributes))
    assert fields["fields"] == [
        "model_name",
        "model_version",
        "method",
        "rest_uri",
        "grpc_port",
        "channel",
        "custom_attributes",
        "request_content_type",
        "accept_header",
        "content_length",
    ]
    assert fields["model_name"] == "scaled" and fields["model_version"] == "2"
    assert fields["method"] is None and fields["custom_attributes"] == attributes
    assert fields["request_content_type"] == "text/plain"
    assert fields["accept_header"] == "*/*"  # what requests sends, as AWS passed it on
    assert fields["content_length"] == 3 and fields["read"] == 3
    assert fields["rest_uri_tail"] == "scaled/versions/2:predict"
    plain = ok(post(endpoint, b"{}", None, None, accept="application/x-npy"))
    assert plain["model_name"] is None and plain["custom_attributes"] is None
    assert plain["request_content_type"] == "application/json"
    assert plain["accept_header"] == "application/x-npy"
    assert plain["rest_uri_tail"] == "half_plus_three:predict"


@check("output_reformat")
def _reformat(endpoint: Endpoint) -> None:
    answer = ok(post(endpoint, {"instances": [[1.0, 2.0]]}, attributes="tfs-model-name=scaled"))
    assert answer == {"labels": [{"label": "high", "max": 20.0}]}


@check("binary_input_handler")
def _binary(endpoint: Endpoint) -> None:
    body = np.array([1.0, 2.0, 5.0], dtype=np.float32).tobytes()
    answer = ok(post(endpoint, body, "application/octet-stream", HALF))
    assert answer == {"predictions": [[3.5, 4.0, 5.5]]}


@check("handler_regress_uri")
def _regress(endpoint: Endpoint) -> None:
    assert ok(post(endpoint, [1.0, 2.0], attributes=HALF)) == {"results": [3.5, 4.0]}


@check("handler_model_status")
def _status(endpoint: Endpoint) -> None:
    answer = ok(post(endpoint, {"instances": [[1.0]]}, attributes="tfs-model-name=scaled"))
    assert answer == {"predictions": [[10.0]], "versions": ["10", "2", "1"]}


@check("handler_two_models")
def _two(endpoint: Endpoint) -> None:
    answer = ok(post(endpoint, {"instances": [[1.0]]}))
    assert answer == {"half_plus_three": [[3.5]], "scaled": [[10.0]]}


@check("jsonlines_input_handler")
def _jsonlines(endpoint: Endpoint) -> None:
    response = post(endpoint, "[1.0, 2.0]\n[3.0, 4.0]\n", "application/jsonlines", HALF)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonlines")
    assert [json.loads(line) for line in response.text.splitlines()] == [[3.5, 4.0], [4.5, 5.0]]


SETUP = {
    "handler_with_lib": {"files": LIB},
    "handler_with_requirements": {"save": _with_requirements},
    "handler_with_lib_and_requirements": {"files": LIB, "save": _with_requirements},
}


def test_the_corpus_is_complete():
    names = sorted(p.stem for p in SCRIPTS.glob("*.py"))
    assert names == sorted(CHECKS) and len(names) >= 10
    for name in names:
        assert "Pattern:" in (SCRIPTS / (name + ".py")).read_text(), name


@pytest.mark.parametrize("script", sorted(CHECKS))
def test_script_runs_unchanged(tmp_path: Path, script: str) -> None:
    setup = SETUP.get(script, {})
    env = {"EIKIT_REQUIREMENTS_TARGET": str(tmp_path / "site")}
    with start(tmp_path, script, setup.get("save", save_tree), setup.get("files"), env) as endpoint:
        CHECKS[script](endpoint)
        assert endpoint.ping().status_code == 200
