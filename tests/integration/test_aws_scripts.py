"""A corpus of inference scripts written for AWS's PyTorch container (MMS + sagemaker-inference
+ sagemaker-pytorch-inference-toolkit), each served unchanged by a real server and checked
against the answers AWS's stack gives. The scripts are in ``aws_scripts/``; each one's
docstring names the AWS pattern it follows."""

from __future__ import annotations

import importlib.util
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest
import requests

from tests.integration.conftest import Endpoint, ModelTree, expected

torch = pytest.importorskip("torch")

SCRIPTS = Path(__file__).parent / "aws_scripts"
ROWS = [[1, 2, 3, 4], [5, 6, 7, 8]]
OUT = [[float(v) for v in row] for row in expected(ROWS)]  # [[1.0, 9.5], [5.0, 21.5]]
OUT_CSV = "1.0,9.5\n5.0,21.5\n"  # AWS's encoder: np.savetxt(rows, delimiter=",", fmt="%s")
ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"

Check = Callable[[Endpoint, ModelTree], None]


@dataclass
class Case:
    check: Check
    needs: Tuple[str, ...] = ()
    setup: Optional[Callable[[ModelTree], None]] = None


CASES: Dict[str, Case] = {}


def case(
    name: str,
    needs: Tuple[str, ...] = (),
    setup: Optional[Callable[[ModelTree], None]] = None,
) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        CASES[name] = Case(check, needs, setup)
        return check

    return register


# --- helpers ---------------------------------------------------------------------


def npy(rows: List[List[float]], dtype: str = "float32") -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array(rows, dtype=dtype))
    return buffer.getvalue()


def ok(answer: requests.Response, endpoint: Endpoint, content_type: str) -> requests.Response:
    """A 200 of the given Content-Type, else the status, body and server log."""
    assert answer.status_code == 200, "%d %s\n%s" % (
        answer.status_code,
        answer.text,
        endpoint.log(),
    )
    assert answer.headers["content-type"] == content_type, endpoint.log()
    return answer


def failed(answer: requests.Response, endpoint: Endpoint, exception: str) -> Dict[str, str]:
    """A 500 naming ``exception`` in a JSON error body, with no traceback."""
    assert answer.status_code == 500, "%d %s\n%s" % (
        answer.status_code,
        answer.text,
        endpoint.log(),
    )
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error", "code"}, body
    assert exception in body["error"], body
    assert "Traceback" not in answer.text
    return body


def loaded(answer: requests.Response) -> np.ndarray:
    return np.load(io.BytesIO(answer.content), allow_pickle=False)


def rows_json() -> bytes:
    return json.dumps(ROWS).encode()


# --- the corpus --------------------------------------------------------------------


@case("default_input_user_predict")
def _default_input_user_predict(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = ok(endpoint.invoke(rows_json()), endpoint, "application/json")
    assert answer.json() == OUT
    csv_body = b"1,2,3,4\n5,6,7,8\n"
    answer = ok(endpoint.invoke(csv_body, "text/csv", "text/csv"), endpoint, "text/csv")
    assert answer.text == OUT_CSV
    answer = endpoint.invoke(npy(ROWS), "application/x-npy", "application/x-npy")
    assert loaded(ok(answer, endpoint, "application/x-npy")).tolist() == OUT


@case("default_predict_user_output")
def _default_predict_user_output(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = ok(endpoint.invoke(rows_json()), endpoint, "application/json")
    assert answer.json() == {"predictions": OUT}
    answer = endpoint.invoke(rows_json(), accept="application/json")
    assert ok(answer, endpoint, "application/json").json() == {"predictions": OUT}
    failed(endpoint.invoke(rows_json(), accept="text/csv"), endpoint, "ValueError")


@case("csv_pandas_input", needs=("pandas",))
def _csv_pandas_input(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(b"1,2,3,4\n5,6,7,8\n", "text/csv")
    assert ok(answer, endpoint, "application/json").json() == OUT
    answer = endpoint.invoke(b"1,2,3,4", "text/csv", "text/csv")
    assert ok(answer, endpoint, "text/csv").text == "1.0,9.5\n"
    failed(endpoint.invoke(rows_json()), endpoint, "ValueError")


@case("json_dict_inputs")
def _json_dict_inputs(endpoint: Endpoint, tree: ModelTree) -> None:
    body = json.dumps({"inputs": ROWS}).encode()
    assert ok(endpoint.invoke(body), endpoint, "application/json").json() == OUT
    answer = endpoint.invoke(body, accept="text/csv")
    assert ok(answer, endpoint, "text/csv").text == OUT_CSV


@case("csv_split_input")
def _csv_split_input(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(b"1,2,3,4", "text/csv")
    assert ok(answer, endpoint, "application/json").json() == OUT[:1]
    answer = endpoint.invoke(b"5,6,7,8\n", "text/csv")
    assert ok(answer, endpoint, "application/json").json() == OUT[1:]


@case("device_jit_load")
def _device_jit_load(endpoint: Endpoint, tree: ModelTree) -> None:
    assert ok(endpoint.invoke(rows_json()), endpoint, "application/json").json() == OUT
    answer = endpoint.invoke(rows_json(), accept="application/x-npy")
    assert loaded(ok(answer, endpoint, "application/x-npy")).tolist() == OUT


def _write_state_dict(tree: ModelTree) -> None:
    """model.pth: the state dict of ``DataParallel(Net())`` holding the conftest's weights."""
    state = {
        "module.fc.weight": torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]),
        "module.fc.bias": torch.tensor([0.0, 0.5]),
    }
    torch.save(state, str(tree.model_dir / "model.pth"))


@case("eager_state_dict", setup=_write_state_dict)
def _eager_state_dict(endpoint: Endpoint, tree: ModelTree) -> None:
    assert ok(endpoint.invoke(rows_json()), endpoint, "application/json").json() == OUT
    answer = endpoint.invoke(npy(ROWS), "application/x-npy", "application/x-npy")
    assert loaded(ok(answer, endpoint, "application/x-npy")).tolist() == OUT


@case("transform_image", needs=("PIL",))
def _transform_image(endpoint: Endpoint, tree: ModelTree) -> None:
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.array(ROWS, dtype=np.uint8)).save(png, format="PNG")
    for content_type in ("image/png", "application/x-image"):
        answer = endpoint.invoke(png.getvalue(), content_type, "application/json")
        assert ok(answer, endpoint, "application/json").json() == OUT
    failed(endpoint.invoke(rows_json()), endpoint, "ValueError")


@case("transform_json_str")
def _transform_json_str(endpoint: Endpoint, tree: ModelTree) -> None:
    body = json.dumps({"instances": ROWS}).encode()
    answer = ok(endpoint.invoke(body), endpoint, "application/json")
    assert answer.json() == {"predictions": OUT, "body_type": "str"}
    # Only exactly application/json is decoded to str (content_types.UTF8_TYPES).
    answer = endpoint.invoke(body, "application/json; charset=utf-8", "application/json")
    assert ok(answer, endpoint, "application/json").json() == {
        "predictions": OUT,
        "body_type": "bytes",
    }


@case("context_hooks")
def _context_hooks(endpoint: Endpoint, tree: ModelTree) -> None:
    body = ok(endpoint.invoke(rows_json()), endpoint, "application/json").json()
    assert Path(body.pop("model_fn_dir")).resolve() == tree.model_dir.resolve()
    assert Path(body.pop("model_dir")).resolve() == tree.model_dir.resolve()
    gpu_id = 0 if torch.cuda.is_available() else None  # MMS: None on CPU
    assert body == {
        "predictions": OUT,
        "has_model_file": True,
        "gpu_id": gpu_id,
        "accept": "application/json",
    }


@case("passthrough_bytes")
def _passthrough_bytes(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(b"\x00\xffraw", "application/octet-stream")
    # No content type returned: the reply's type is accept (the default).
    assert ok(answer, endpoint, "application/json").content == b"output:\x00\xffraw"
    answer = endpoint.invoke(b'{"a": 1}', "application/json", "text/plain")
    assert ok(answer, endpoint, "text/plain").content == b'output:{"a": 1}'


@case("custom_attributes")
def _custom_attributes(endpoint: Endpoint, tree: ModelTree) -> None:
    sent = "trace_id=c000b4f9,version=2"
    answer = endpoint.invoke(rows_json(), headers={ATTRIBUTES: sent})
    ok(answer, endpoint, "application/json")
    assert answer.headers[ATTRIBUTES] == "echo:" + sent
    assert answer.headers["X-Model-Rows"] == "2"
    assert answer.json() == {"scores": OUT, "from_header": sent, "from_properties": sent}
    answer = ok(endpoint.invoke(rows_json()), endpoint, "application/json")
    assert ATTRIBUTES not in answer.headers
    assert answer.json() == {"scores": OUT, "from_header": None, "from_properties": None}


@case("response_status")
def _response_status(endpoint: Endpoint, tree: ModelTree) -> None:
    assert ok(endpoint.invoke(rows_json()), endpoint, "application/json").json() == OUT
    # The type the script set (AWS's Transformer then sets accept, which is the same here).
    answer = endpoint.invoke(rows_json(), accept="text/plain")
    assert ok(answer, endpoint, "text/plain").text == "1.0 9.5\n5.0 21.5"
    answer = endpoint.invoke(b"[[1000, 0, 0, 0]]")
    assert answer.status_code == 422, endpoint.log()
    assert answer.headers["content-type"] == "application/json"  # accept, as on AWS
    assert answer.json() == {"error": "prediction out of range", "limit": 100.0}
    # The status is per request: the next one is a 200 again.
    assert ok(endpoint.invoke(rows_json()), endpoint, "application/json").json() == OUT


@case("mms_metrics")
def _mms_metrics(endpoint: Endpoint, tree: ModelTree) -> None:
    for _ in range(2):
        answer = endpoint.invoke(rows_json())
        assert ok(answer, endpoint, "application/json").json() == OUT


@case("output_tuple")
def _output_tuple(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(rows_json())
    json_type = "application/vnd.example.predictions+json"
    assert ok(answer, endpoint, json_type).json() == {"predictions": OUT}
    answer = endpoint.invoke(rows_json(), accept="text/csv")
    assert ok(answer, endpoint, "text/csv").text == OUT_CSV


@case("output_json_str")
def _output_json_str(endpoint: Endpoint, tree: ModelTree) -> None:
    for accept in (None, "*/*", "application/json"):
        answer = ok(endpoint.invoke(rows_json(), accept=accept), endpoint, "application/json")
        assert answer.json() == {"result": OUT, "accept": "application/json"}


@case("output_dict")
def _output_dict(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = ok(endpoint.invoke(rows_json()), endpoint, "application/json")
    # exactly MMS's serialisation of a non-str, non-bytes return value
    assert answer.text == json.dumps({"predictions": OUT, "count": 2}, indent=2)


@case("output_npy")
def _output_npy(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(rows_json(), accept="application/x-npy")
    array = loaded(ok(answer, endpoint, "application/x-npy"))
    assert array.dtype == np.float32 and array.tolist() == OUT
    answer = endpoint.invoke(rows_json(), accept="application/json")
    assert ok(answer, endpoint, "application/json").json() == OUT
    failed(endpoint.invoke(rows_json(), accept="text/csv"), endpoint, "ValueError")


@case("npy_input")
def _npy_input(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(npy(ROWS), "application/x-npy")
    assert ok(answer, endpoint, "application/json").json() == OUT
    failed(endpoint.invoke(rows_json()), endpoint, "ValueError")


@case("value_error")
def _value_error(endpoint: Endpoint, tree: ModelTree) -> None:
    body = json.dumps({"instances": ROWS}).encode()
    assert ok(endpoint.invoke(body), endpoint, "application/json").json() == OUT
    failed(endpoint.invoke(b'{"rows": []}'), endpoint, "ValueError")
    assert "ValueError: request has no 'instances'" in endpoint.log()
    failed(endpoint.invoke(b"1,2,3,4", "text/csv"), endpoint, "ValueError")
    assert ok(endpoint.invoke(body), endpoint, "application/json").json() == OUT


@case("csv_single_record")
def _csv_single_record(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(b"1,2,3,4\n5,6,7,8\n", "text/csv")
    assert ok(answer, endpoint, "application/json").json() == OUT
    # One record: np.genfromtxt gives a 1-D array, so AWS's model sees shape [4] and the
    # default output_fn answers a 1-D list.
    answer = endpoint.invoke(b"1,2,3,4\n", "text/csv")
    assert ok(answer, endpoint, "application/json").json() == OUT[0]
    answer = endpoint.invoke(b"1,2,3,4\n", "text/csv", "text/csv")
    assert ok(answer, endpoint, "text/csv").text == "1.0\n9.5\n"  # np.savetxt of a 1-D list


@case("ei_model_fn")
def _ei_model_fn(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(npy(ROWS), "application/x-npy", "application/x-npy")
    assert loaded(ok(answer, endpoint, "application/x-npy")).tolist() == OUT
    assert ok(endpoint.invoke(rows_json()), endpoint, "application/json").json() == OUT


@case("model_dict_predict")
def _model_dict_predict(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(json.dumps({"inputs": ROWS}).encode())
    shifted = [[value + 10.0 for value in row] for row in OUT]
    assert ok(answer, endpoint, "application/json").json() == {"scores": OUT, "shifted": shifted}


@case("transform_npy_context")
def _transform_npy_context(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = endpoint.invoke(npy(ROWS), "application/x-npy")
    array = loaded(ok(answer, endpoint, "application/x-npy"))
    assert array.dtype == np.float32 and array.tolist() == OUT
    assert answer.headers["X-Input-Shape"] == "2x4"
    failed(endpoint.invoke(rows_json()), endpoint, "ValueError")


@case("octet_stream_input")
def _octet_stream_input(endpoint: Endpoint, tree: ModelTree) -> None:
    body = np.array(ROWS, dtype="<f4").tobytes()
    answer = endpoint.invoke(body, "application/octet-stream")
    assert ok(answer, endpoint, "text/csv").text == OUT_CSV


@case("sagemaker_inference_codecs")
def _sagemaker_inference_codecs(endpoint: Endpoint, tree: ModelTree) -> None:
    assert ok(endpoint.invoke(rows_json()), endpoint, "application/json").json() == OUT
    answer = endpoint.invoke(npy(ROWS), "application/x-npy", "application/x-npy")
    assert loaded(ok(answer, endpoint, "application/x-npy")).tolist() == OUT


@case("toolkit_error")
def _toolkit_error(endpoint: Endpoint, tree: ModelTree) -> None:
    assert ok(endpoint.invoke(json.dumps({"inputs": ROWS}).encode()), endpoint, "application/json")
    for body, status, message in (
        (b'{"rows": []}', 422, "the request has no 'inputs'"),
        (b'{"inputs": []}', 400, "'inputs' is empty"),
    ):
        answer = endpoint.invoke(body)
        assert answer.status_code == status, (answer.text, endpoint.log())
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"error": message, "code": "inference_error"}


@case("six_pickled_tensor")
def _six_pickled_tensor(endpoint: Endpoint, tree: ModelTree) -> None:
    pickled = io.BytesIO()
    torch.save(torch.tensor(ROWS, dtype=torch.float32), pickled)
    answer = endpoint.invoke(pickled.getvalue(), "application/python-pickle")
    assert ok(answer, endpoint, "application/json").json() == OUT
    failed(endpoint.invoke(rows_json()), endpoint, "ValueError")


NET_MODULE = """
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
"""


def _write_code_helpers(tree: ModelTree) -> None:
    """code/net.py and code/labels.json next to the script, model.pth for ``Net``."""
    code = tree.model_dir / "code"
    (code / "net.py").write_text(NET_MODULE)
    (code / "labels.json").write_text(json.dumps(["first", "rest"]))
    state = {
        "fc.weight": torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]),
        "fc.bias": torch.tensor([0.0, 0.5]),
    }
    torch.save(state, str(tree.model_dir / "model.pth"))


@case("sibling_module", setup=_write_code_helpers)
def _sibling_module(endpoint: Endpoint, tree: ModelTree) -> None:
    answer = ok(endpoint.invoke(rows_json()), endpoint, "application/json")
    assert answer.json() == [{"first": a, "rest": b} for a, b in OUT]


@case("default_arg_hooks")
def _default_arg_hooks(endpoint: Endpoint, tree: ModelTree) -> None:
    body = json.dumps({"words": ["two", "one"]}).encode()
    answer = ok(endpoint.invoke(body), endpoint, "application/json")
    assert answer.json() == {"words": ["two", "one"], "scores": [OUT[1], OUT[0]]}
    failed(endpoint.invoke(body, accept="text/csv"), endpoint, "Exception")


# --- the tests ---------------------------------------------------------------------


def test_every_script_in_the_corpus_is_checked():
    scripts = {path.stem for path in SCRIPTS.glob("*.py") if path.name != "conftest.py"}
    assert scripts == set(CASES)
    assert len(scripts) >= 16


@pytest.mark.parametrize("name", sorted(CASES))
def test_aws_script_runs_unchanged(name, tree, start):
    """The script, copied byte for byte as code/inference.py, answers as on AWS."""
    spec = CASES[name]
    for module in spec.needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip("%s.py imports %s, which is not installed" % (name, module))
    source = (SCRIPTS / (name + ".py")).read_bytes()
    (tree.model_dir / "code").mkdir()
    (tree.model_dir / "code" / "inference.py").write_bytes(source)
    if spec.setup is not None:
        spec.setup(tree)
    endpoint = start(tree)
    spec.check(endpoint, tree)
