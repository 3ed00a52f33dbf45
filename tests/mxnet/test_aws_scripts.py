"""A corpus of inference scripts written for AWS's MXNet container (MMS + sagemaker-inference
+ sagemaker-mxnet-inference-toolkit), each served unchanged by a real server and checked
against the answers AWS's stack gives. The scripts are in ``aws_scripts/``; each one's
docstring names the pattern it follows.

Where eikit answers differently on purpose, the check says so: an NPY answer keeps the
prediction's float32 (AWS's default output_fn goes through ``tolist()`` and answers
float64), and errors are JSON without a traceback.
"""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import mxnet as mx
import numpy as np
import pytest
import requests

from tests.frameworks import expected
from tests.mxnet.models import gluon_dense, save_gluon_linear
from tests.serving import Endpoint, ModelTree

SCRIPTS = Path(__file__).parent / "aws_scripts"
ROWS = [[1, 2, 3, 4], [5, 6, 7, 8]]
OUT = [[float(v) for v in row] for row in expected(ROWS)]  # [[1.0, 9.5], [5.0, 21.5]]
OUT_CSV = "1.0,9.5\n5.0,21.5\n"  # AWS's encoder: np.savetxt(rows, delimiter=",", fmt="%s")
JSON_ROWS = json.dumps(ROWS).encode()
CSV_ROWS = b"1,2,3,4\n5,6,7,8\n"

Check = Callable[[Endpoint], None]
CASES: Dict[str, Tuple[Check, Optional[Callable[[ModelTree], None]], Tuple[str, ...]]] = {}


def case(name: str, setup: Optional[Callable[[ModelTree], None]] = None, needs=()):
    def register(check: Check) -> Check:
        CASES[name] = (check, setup, tuple(needs))
        return check

    return register


def npy(rows: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array(rows, dtype=np.float32))
    return buffer.getvalue()


def answered(
    response: requests.Response, endpoint: Endpoint, status: int = 200, media: str = ""
) -> requests.Response:
    """``response`` had ``status`` (and Content-Type ``media``), else show the server's log."""
    detail = "%d %s\n%s" % (response.status_code, response.text[:500], endpoint.log())
    assert response.status_code == status, detail
    if media:
        assert response.headers["content-type"] == media, detail
    if status >= 400:
        assert response.headers["content-type"] == "application/json", detail
        assert "Traceback" not in response.text
    return response


def as_npy(response: requests.Response) -> np.ndarray:
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def save_dense_parameters(tree: ModelTree) -> None:
    """model.params for ``gluon.nn.Dense(2, in_units=4)`` holding the linear model."""
    gluon_dense(hybridize=False).save_parameters(str(tree.model_dir / "model.params"))


def save_sequential_parameters(tree: ModelTree) -> None:
    """model.params for a HybridSequential holding that Dense layer."""
    net = mx.gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon_dense(hybridize=False))
    net.save_parameters(str(tree.model_dir / "model.params"))


def save_export(tree: ModelTree) -> None:
    save_gluon_linear(tree.model_dir)


# --- the corpus --------------------------------------------------------------------


@case("module_checkpoint_model_fn")
def _module_checkpoint(endpoint: Endpoint) -> None:
    assert answered(endpoint.invoke(JSON_ROWS), endpoint, media="application/json").json() == OUT
    answer = endpoint.invoke(CSV_ROWS, "text/csv", "text/csv")
    assert answered(answer, endpoint, media="text/csv").text == OUT_CSV
    answer = endpoint.invoke(npy(ROWS), "application/x-npy", "application/x-npy")
    assert as_npy(answered(answer, endpoint)).tolist() == OUT


@case("gluon_load_parameters", setup=save_sequential_parameters)
def _gluon_load_parameters(endpoint: Endpoint) -> None:
    assert answered(endpoint.invoke(JSON_ROWS), endpoint).json() == OUT
    answer = endpoint.invoke(npy(ROWS), "application/x-npy", "application/json")
    assert answered(answer, endpoint, media="application/json").json() == OUT


@case("transform_fn_json", setup=save_dense_parameters)
def _transform_fn_json(endpoint: Endpoint) -> None:
    answer = answered(endpoint.invoke(JSON_ROWS), endpoint, media="application/json")
    assert answer.json() == {"scores": OUT, "classes": [1.0, 1.0]}


@case("ei_module_model_fn")
def _ei_module_model_fn(endpoint: Endpoint) -> None:
    assert answered(endpoint.invoke(JSON_ROWS), endpoint).json() == OUT
    answer = endpoint.invoke(npy(ROWS), "application/x-npy", "application/x-npy")
    assert as_npy(answered(answer, endpoint)).tolist() == OUT
    assert "the script called mx.eia(): no EI accelerator here" in endpoint.log()


@case("ei_gluon_imports", setup=save_export)
def _ei_gluon_imports(endpoint: Endpoint) -> None:
    body = json.dumps({"instances": ROWS}).encode()
    answer = answered(endpoint.invoke(body), endpoint, media="application/json")
    assert answer.json() == {"predictions": OUT}
    answered(endpoint.invoke(CSV_ROWS, "text/csv"), endpoint, status=500)


@case("input_fn_with_model")
def _input_fn_with_model(endpoint: Endpoint) -> None:
    assert answered(endpoint.invoke(JSON_ROWS), endpoint).json() == OUT
    answer = endpoint.invoke(b"[[1, 2, 3, 4]]", accept="text/csv")
    assert answered(answer, endpoint, media="text/csv").text == "1.0,9.5\n"
    failure = answered(endpoint.invoke(CSV_ROWS, "text/csv"), endpoint, status=500)
    assert "ValueError" in failure.json()["error"]


@case("predict_fn_batch_namedtuple")
def _predict_fn_batch_namedtuple(endpoint: Endpoint) -> None:
    assert answered(endpoint.invoke(JSON_ROWS), endpoint).json() == OUT
    answer = endpoint.invoke(JSON_ROWS, accept="text/csv")
    assert answered(answer, endpoint, media="text/csv").text == OUT_CSV
    # np.squeeze of one row: a 1-D answer, as on AWS
    assert answered(endpoint.invoke(b"[[1, 2, 3, 4]]"), endpoint).json() == OUT[0]


@case("csv_pandas_input", needs=("pandas",))
def _csv_pandas_input(endpoint: Endpoint) -> None:
    answer = endpoint.invoke(CSV_ROWS, "text/csv")
    assert answered(answer, endpoint, media="application/json").json() == OUT
    failure = answered(endpoint.invoke(JSON_ROWS), endpoint, status=500)
    assert "ValueError" in failure.json()["error"]


@case("toolkit_error")
def _toolkit_error(endpoint: Endpoint) -> None:
    body = json.dumps({"inputs": ROWS}).encode()
    assert answered(endpoint.invoke(body), endpoint).json() == OUT
    refused = answered(endpoint.invoke(b'{"rows": []}'), endpoint, status=422)
    assert refused.json() == {"error": "the request has no 'inputs'", "code": "inference_error"}


@case("default_input_user_predict")
def _default_input_user_predict(endpoint: Endpoint) -> None:
    assert answered(endpoint.invoke(JSON_ROWS), endpoint).json() == OUT
    answer = endpoint.invoke(CSV_ROWS, "text/csv", "text/csv")
    assert answered(answer, endpoint, media="text/csv").text == OUT_CSV


# --- the tests ---------------------------------------------------------------------


def test_every_script_in_the_corpus_is_checked():
    scripts = {path.stem for path in SCRIPTS.glob("*.py") if path.name != "conftest.py"}
    assert scripts == set(CASES)
    assert len(scripts) >= 8


@pytest.mark.parametrize("name", sorted(CASES))
def test_aws_script_runs_unchanged(name, tree, start):
    """The script, copied byte for byte as code/inference.py, answers as on AWS."""
    check, setup, needs = CASES[name]
    for module in needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip("%s.py imports %s, which is not installed" % (name, module))
    (tree.model_dir / "code").mkdir()
    (tree.model_dir / "code" / "inference.py").write_bytes((SCRIPTS / (name + ".py")).read_bytes())
    if setup is not None:
        setup(tree)
    check(start(tree))
