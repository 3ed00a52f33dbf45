"""The pipeline composes user and default hooks as AWS's PyTorch container does, and its
short path (no user request hook) answers exactly what the composed default hooks answer."""

from __future__ import annotations

import io
import json
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
import torch

from eikit import codecs
from eikit.accelerators import cpu_probe
from eikit.context import Context
from eikit.errors import EikitError, status_of
from eikit.pipeline import Pipeline
from eikit.user_module import validate
from eikit_pytorch.session import TorchSession

pytestmark = pytest.mark.filterwarnings("ignore:`torch\\.jit\\.:DeprecationWarning")


class Linear(torch.nn.Module):
    """y = [x0, x1 + x2 + x3 + 0.5] for 4 features."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.layer.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 1.0, 1.0]]))
            self.layer.bias.copy_(torch.tensor([0.0, 0.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class Pair(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return x - y, x + y


def pipeline(model: Any, namespace: Dict[str, Any], short_path: bool = True) -> Pipeline:
    session = TorchSession(cpu_probe(), "cpu", threads=None)
    context = Context("/nowhere", "cpu", "cpu")
    built = Pipeline(validate("script", namespace), session, context, short_path=short_path)
    built.model = model
    return built


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


LINEAR_CASES: List[Tuple[bytes, str, str]] = [
    (b"[[1, 2, 3, 4]]", "application/json", "application/json"),
    (b"[[1, 2, 3, 4], [0.5, 0, 0, 1e30]]", "application/json", "text/csv"),
    (b"1,2,3,4\n5,6,7,8\n", "text/csv", "application/json"),
    (b"1,2,3,4\r\n", "text/csv", "text/csv"),
    (b"[1, 2, 3, 4]\n[4, 3, 2, 1]\n", "application/jsonlines", "application/jsonlines"),
    (npy(np.ones((2, 4), np.float32)), "application/x-npy", "application/x-npy"),
    (npy(np.ones((1, 4), np.float64)), "application/x-npy", "application/json"),
    (npz(x=np.ones((1, 4), np.float32)), "application/x-npz", "application/x-npz"),
    (b"[[1, 2, 3, 4]]", "application/json", "application/json;q=0.1, text/csv"),
    (b"[[1, 2, 3, 4]]", "application/json", "*/*"),
    # client errors: both paths must refuse alike
    (b"[[1, 2, 3]]", "application/json", "application/json"),
    (b"[]", "application/json", "application/json"),
    (b"{not json", "application/json", "application/json"),
    (b"1,2,3,4", "image/png", "application/json"),
    (b"[[1, 2, 3, 4]]", "application/json", "image/png"),
    (b"", "text/csv", "application/json"),
]


def answer(built: Pipeline, body: bytes, content_type: str, accept: str) -> Any:
    try:
        result = built.invoke(body, content_type, accept, b"")
    except EikitError as exc:
        return ("error", status_of(exc), type(exc).__name__)
    return (result.status, result.content_type, result.body)


@pytest.mark.parametrize("body,content_type,accept", LINEAR_CASES)
def test_the_short_path_answers_what_the_composed_default_hooks_answer(
    body: bytes, content_type: str, accept: str
) -> None:
    model = torch.jit.script(Linear().eval())
    short = pipeline(model, {})
    composed = pipeline(model, {}, short_path=False)
    assert short.short_path and not composed.short_path
    assert answer(short, body, content_type, accept) == answer(composed, body, content_type, accept)


def test_both_paths_agree_on_several_outputs_and_positional_npz_inputs() -> None:
    model = torch.jit.script(Pair())
    body = npz(x=np.array([5.0, 7.0], np.float32), y=np.array([1.0, 2.0], np.float32))
    short = answer(pipeline(model, {}), body, codecs.NPZ, codecs.JSON)
    composed = answer(pipeline(model, {}, short_path=False), body, codecs.NPZ, codecs.JSON)
    assert short == composed
    assert json.loads(short[2]) == [[4.0, 5.0], [6.0, 9.0]]


# --- what each hook is handed, in every mix --------------------------------------------


def test_a_user_predict_fn_after_the_default_input_fn_gets_a_float_tensor() -> None:
    seen: Dict[str, Any] = {}

    def predict_fn(data: Any, model: Any) -> Any:
        seen["data"] = data
        return model(data)

    built = pipeline(torch.jit.script(Linear().eval()), {"predict_fn": predict_fn})
    result = built.invoke(b"[[1, 2, 3, 4]]", codecs.JSON, None, b"")
    assert isinstance(seen["data"], torch.Tensor) and seen["data"].dtype == torch.float32
    assert json.loads(result.body) == [[1.0, 9.5]]


def test_a_user_output_fn_after_the_default_predict_fn_gets_the_models_tensor() -> None:
    def output_fn(prediction: Any, accept: str) -> Any:
        assert isinstance(prediction, torch.Tensor), type(prediction)
        return json.dumps(prediction.detach().cpu().numpy().tolist()), accept

    built = pipeline(torch.jit.script(Linear().eval()), {"output_fn": output_fn})
    result = built.invoke(b"1,2,3,4\n5,6,7,8", codecs.CSV, "application/json", b"")
    answer = ("application/json", [[1.0, 9.5], [5.0, 21.5]])
    assert (result.content_type, json.loads(result.body)) == answer


@pytest.mark.parametrize(
    "content_type,expected",
    [
        ("application/json", str),
        ("text/csv", str),
        ("application/x-npy", bytes),
        ("application/octet-stream", bytes),
        ("application/json; charset=utf-8", bytes),  # sagemaker-inference compares exactly
    ],
)
def test_a_user_input_fn_gets_str_for_json_and_csv_and_bytes_otherwise(
    content_type: str, expected: type
) -> None:
    seen: List[Any] = []

    def input_fn(input_data: Any, request_content_type: str) -> Any:
        seen.append(input_data)
        return torch.tensor([[1.0, 2.0, 3.0, 4.0]])

    built = pipeline(torch.jit.script(Linear().eval()), {"input_fn": input_fn})
    built.invoke(b"1", content_type, None, b"")
    assert type(seen[0]) is expected


def test_a_user_transform_fn_gets_str_for_json_and_may_return_any_json_value() -> None:
    def transform_fn(model: Any, data: Any, content_type: str, accept: str) -> Any:
        assert isinstance(data, str)
        rows = torch.tensor(json.loads(data)["inputs"], dtype=torch.float32)
        return {"outputs": model(rows).tolist()}

    built = pipeline(torch.jit.script(Linear().eval()), {"transform_fn": transform_fn})
    result = built.invoke(b'{"inputs": [[1, 2, 3, 4]]}', None, None, b"")
    # MMS sends a non-bytes, non-str answer as json.dumps(value, indent=2)
    assert result.body == json.dumps({"outputs": [[1.0, 9.5]]}, indent=2).encode()
    assert result.content_type == "application/json"


def test_a_body_that_is_not_utf8_is_the_clients_error_for_a_user_input_fn() -> None:
    built = pipeline(torch.jit.script(Linear().eval()), {"input_fn": lambda data, ct: data})
    with pytest.raises(EikitError) as refused:
        built.invoke(b"\xff\xfe", codecs.JSON, None, b"")
    assert status_of(refused.value) == 400


def test_the_status_and_type_a_script_sets_are_the_replys() -> None:
    def output_fn(prediction: Any, accept: str, context: Any) -> Any:
        context.set_response_status(201, "Created")
        context.set_response_content_type(0, "application/vnd.eikit+json")
        return b"{}"

    built = pipeline(torch.jit.script(Linear().eval()), {"output_fn": output_fn})
    result = built.invoke(b"[[1, 2, 3, 4]]", codecs.JSON, None, b"")
    assert (result.status, result.content_type) == (201, "application/vnd.eikit+json")
