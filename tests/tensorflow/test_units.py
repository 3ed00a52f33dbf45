"""Unit tests of the in-process path's parts: model discovery, request parsing as AWS's
container parses, TF Serving's JSON rules, the probes and the choice of execution path."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from eikit.accelerators import ProbeResult
from eikit.errors import (
    BadRequest,
    ConfigurationError,
    ModelNotFound,
    NotAcceptable,
    UnsupportedMediaType,
)
from eikit.settings import Settings
from eikit_tensorflow import invocation, layout, probes, tensors
from eikit_tensorflow.tensors import Spec

# --- layout: AWS's find_models / find_model_versions / default model --------------------


def touch(root: Path, *versions: str) -> None:
    for version in versions:
        (root / version).mkdir(parents=True, exist_ok=True)
        (root / version / "saved_model.pb").write_bytes(b"")


def test_a_model_at_the_top_is_named_after_the_model_dir(tmp_path: Path) -> None:
    model = tmp_path / "model"
    touch(model, "1", "00000002", "10")
    found = layout.discover(model)
    assert list(found) == ["model"]
    assert list(found["model"]) == [1, 2, 10]  # leading zeros dropped, numeric order
    assert found["model"][2] == model / "00000002"
    assert layout.default_model(found) == "model"


def test_named_models_side_by_side_and_deeper(tmp_path: Path) -> None:
    model = tmp_path / "model"
    touch(model / "half_plus_two", "00000123")
    touch(model / "a" / "cifar", "1540855709")
    (model / "code").mkdir()
    (model / "code" / "inference.py").write_text("")
    found = layout.discover(model)
    assert list(found) == ["cifar", "half_plus_two"]  # depth first, sorted: a/cifar first
    assert layout.default_model(found) == "cifar"
    assert layout.default_model(found, "half_plus_two") == "half_plus_two"


def test_what_is_not_a_version_is_skipped(tmp_path: Path) -> None:
    model = tmp_path / "model"
    touch(model / "m", "1")
    (model / "m" / "2").mkdir()  # no saved_model.pb: skipped (AWS: TF Serving fails it)
    (model / "m" / "abcde").mkdir()
    touch(model / "m", "abcde")  # not a number: not a version
    (model / "saved_model.pb").write_bytes(b"")  # directly in the model dir: not a model
    touch(model / "x", "\u0663")  # a non-ASCII digit is no version for TF Serving
    assert {name: list(v) for name, v in layout.discover(model).items()} == {"m": [1]}


def test_no_models_and_wrong_default_and_duplicates_fail_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no SavedModel"):
        layout.default_model(layout.discover(tmp_path))
    touch(tmp_path / "a" / "m", "1")
    touch(tmp_path / "b" / "m", "1")
    with pytest.raises(ConfigurationError, match="both named 'm'"):
        layout.discover(tmp_path)
    touch(tmp_path / "c" / "other", "1")
    found = {"other": {1: tmp_path}}
    with pytest.raises(ConfigurationError, match="models: other"):
        layout.default_model(found, "missing")


# --- custom attributes and the context -----------------------------------------------------


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, {}),
        ("", {}),
        ("tfs-model-name=a", {"tfs-model-name": "a"}),
        (
            "tfs-model-name=a,tfs-model-version=2,tfs-method=classify",
            {"tfs-model-name": "a", "tfs-model-version": "2", "tfs-method": "classify"},
        ),
        ("x=1, tfs-model-name=b ,y", {"tfs-model-name": "b "}),  # AWS keeps the space
        ("tfs-model-name=a=b", {}),  # AWS's dict() raised here (a 500)
        ("TFS-MODEL-NAME=a", {}),  # the pattern is lower case
    ],
)
def test_custom_attributes_parse_as_aws_does(header: Any, expected: Dict[str, str]) -> None:
    assert invocation.parse_tfs_custom_attributes(header) == expected


def test_rest_uri_as_aws_makes_it() -> None:
    uri = invocation.rest_uri(8501, {}, "m")
    assert uri == "http://localhost:8501/v1/models/m:predict"
    attributes = {"tfs-model-name": "x", "tfs-model-version": "3", "tfs-method": "regress"}
    assert (
        invocation.rest_uri(1, attributes, "m")
        == "http://localhost:1/v1/models/x/versions/3:regress"
    )


def test_target_refuses_a_version_that_is_not_a_number() -> None:
    assert invocation.target({"tfs-model-version": "007"}, "m").version == 7
    with pytest.raises(BadRequest):
        invocation.target({"tfs-model-version": "latest"}, "m")


# --- AWS's conversion of bodies (tensorflowServing.js) --------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        ('{"instances": [1]}', {"instances": [1]}),
        ('{"inputs": {"a": [1]}}', {"inputs": {"a": [1]}}),
        ('{"signature_name": "s", "examples": [{}]}', {"signature_name": "s", "examples": [{}]}),
        ("[1.0, 2.0]", {"instances": [[1.0, 2.0]]}),
        ("[[1.0], [2.0]]", {"instances": [[1.0], [2.0]]}),
        ("5", {"instances": [5]}),
        ('{"a": 1}', {"instances": [{"a": 1}]}),
        ("[1]\n[2]\n", {"instances": [[1], [2]]}),
        ('{"x": 1}\n\n{"x": 2}', {"instances": [{"x": 1}, {"x": 2}]}),
    ],
)
def test_json_bodies(body: str, expected: Dict[str, Any]) -> None:
    assert invocation.default_request(body.encode(), "application/json") == expected


@pytest.mark.parametrize(
    "body, expected",
    [
        ("1.0", [1.0]),
        ("1,2,3", [[1, 2, 3]]),
        ("1,2\n3,4\n", [[1, 2], [3, 4]]),
        ("-1e3,0.5", [[-1000.0, 0.5]]),  # ".5" is not JSON: a 400, as on AWS
        ('"a","b"', [["a", "b"]]),
        ("a,b,c", [["a", "b", "c"]]),  # AWS: ["a","b,c"] (only the first comma replaced)
        ("word", ["word"]),
    ],
)
def test_csv_bodies(body: str, expected: Any) -> None:
    assert invocation.default_request(body.encode(), "text/csv") == {"instances": expected}


TFS_BODIES = [
    b'{"instances": [[1.5, 2, -3e-7]], "signature_name": "s"}',
    b'{"instances": [NaN, Infinity]}',  # TF Serving's parser takes them; orjson does not
    b'{"instances": [123456789012345678901234567890]}',  # beyond 64 bits: json keeps it exact
    b'{"inputs": {"a": ["\\u00e9", "\xc3\xa9"]}}',
    b"[1, 2]",
    b"{",
    b'{"a": [1,]}',
    b"\xef\xbb\xbf{}",
]


@pytest.mark.parametrize("body", TFS_BODIES)
def test_tfs_json_reads_and_refuses_as_json_does(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """orjson (where it reads a body) gives the values and the refusals json gave."""
    from eikit import jsoncodec

    def outcome() -> Any:
        try:
            return "ok", json.dumps(invocation.parse_tfs_json(body), sort_keys=True)
        except BadRequest as exc:
            return "refused", str(exc)

    fast = outcome()
    monkeypatch.setattr(jsoncodec, "orjson", None)
    assert fast == outcome()


def test_bad_bodies_and_types() -> None:
    with pytest.raises(BadRequest, match="JSON Parse error"):
        invocation.default_request(b"1,2;3", "text/csv")
    with pytest.raises(BadRequest, match="not UTF-8"):
        invocation.default_request(b"\xff", "application/json")
    with pytest.raises(UnsupportedMediaType, match="image/png"):
        invocation.default_request(b"x", "image/png")
    # A missing Content-Type counts as JSON (AWS's module: 415 'Unknown').
    assert invocation.default_request(b"[1]", None) == {"instances": [[1]]}
    # Parameters after the type are ignored (AWS compared the whole header).
    assert invocation.default_request(b"[1]", "application/json; charset=utf-8")


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/jsonlines", "application/jsonlines"),
        ("application/json, application/jsonlines", "application/json"),
        ("text/csv, application/json", "application/json"),
        ("application/*", "application/json"),
    ],
)
def test_accept(accept: Any, expected: str) -> None:
    assert invocation.check_accept(accept) == expected


def test_accept_without_json_is_406() -> None:
    with pytest.raises(NotAcceptable):
        invocation.check_accept("text/csv")


# --- TF Serving's JSON rules ------------------------------------------------------------------

FLOAT = {"x": Spec("float32", [None, 2])}


def test_float32_values_are_written_as_tf_serving_writes_them() -> None:
    values = np.array([0.1, 1 / 3, 9000000, 3e-05, np.nan, np.inf, 16777217], dtype=np.float32)
    written = tensors.float32_values(values)
    assert written[0] == 0.1 and written[1] == 0.333333343  # %g did not read back: 9 digits
    assert written[2] == 9000000.0 and written[3] == 3e-05
    assert np.isnan(written[4]) and written[5] == float("inf")
    assert np.float32(written[6]) == values[6]


def test_row_and_columnar_answers() -> None:
    one = {"y": np.array([[1.0], [2.0]], dtype=np.float32)}
    assert tensors.row_answer(one) == {"predictions": [[1.0], [2.0]]}
    assert tensors.columnar_answer(one) == {"outputs": [[1.0], [2.0]]}
    two = {"b": np.array([1, 2]), "a_bytes": np.array([b"x", b"y"], dtype=object)}
    assert tensors.row_answer(two) == {
        "predictions": [{"a_bytes": {"b64": "eA=="}, "b": 1}, {"a_bytes": {"b64": "eQ=="}, "b": 2}]
    }
    with pytest.raises(BadRequest, match="inconsistent batch size"):
        tensors.row_answer({"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(BadRequest, match="no shape information"):
        tensors.row_answer({"a": np.float32(1)})


def test_request_arrays_types() -> None:
    form, arrays = tensors.request_arrays({"instances": [[1, 2.5]]}, FLOAT)
    assert form == "row" and arrays["x"].dtype == np.float32
    with pytest.raises(BadRequest, match="Type: True is not of expected type: float"):
        tensors.request_arrays({"instances": [[True, False]]}, FLOAT)
    with pytest.raises(BadRequest, match="without loss of precision"):
        tensors.request_arrays({"inputs": [[2**25, 1]]}, FLOAT)
    ints = {"a": Spec("int64", [None]), "b": Spec("int64", [None])}
    with pytest.raises(BadRequest, match="keys must be equal to: a,b"):
        tensors.request_arrays({"instances": [{"a": 1}]}, ints)
    with pytest.raises(BadRequest, match="Missing named input: b"):
        tensors.request_arrays({"inputs": {"a": [1]}}, ints)
    strings = {"s": Spec("string", [None])}
    _, arrays = tensors.request_arrays({"instances": ["a", {"b64": "AAE="}]}, strings)
    assert arrays["s"].tolist() == [b"a", b"\x00\x01"]
    with pytest.raises(BadRequest, match="base64"):
        tensors.request_arrays({"instances": [{"b64": "!!"}]}, strings)


# --- probes and the execution path ---------------------------------------------------------


def test_eia_needs_the_signal_then_the_ei_binary(tmp_path: Path) -> None:
    assert not probes.eia_probe(False, lambda: (tmp_path, "x")).available
    missing = probes.eia_probe(True, lambda: (None, "no EI TF Serving binary"))
    assert not missing.available and "no EI TF Serving binary" in missing.reason
    found = probes.eia_probe(True, lambda: (tmp_path / "bin", "EI binary"))
    assert found.available and found.detail["binary"] == str(tmp_path / "bin")


def test_cuda_probe_uses_the_injected_check(tmp_path: Path) -> None:
    from eikit_tensorflow.runtime import TensorFlowRuntime

    runtime = TensorFlowRuntime(cuda_check=lambda: (2, "2 GPU(s)"))
    result = runtime.probes(Settings(device_root=tmp_path))["cuda"]()
    assert result.available and result.count == 2
    none = TensorFlowRuntime(cuda_check=lambda: (0, "none here")).probes(Settings())["cuda"]()
    assert not none.available and none.reason == "none here"
    # The real check looks for device nodes before it imports anything.
    assert probes.tf_cuda_check(tmp_path)[0] == 0


def test_importing_the_runtime_does_not_import_tensorflow() -> None:
    import subprocess

    code = (
        "import sys, eikit_tensorflow, eikit_tensorflow.runtime, eikit_tensorflow.layout, "
        "eikit_tensorflow.executor; from eikit.runtime import find_runtime; "
        "find_runtime('tensorflow'); assert 'tensorflow' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _session(settings: Settings, kind: str = "cpu") -> Any:
    from eikit_tensorflow.session import TensorFlowSession

    return TensorFlowSession(ProbeResult(kind, True, "test"), "/CPU:0", settings, 0, 1)


class FakeExecutor:
    def __init__(self, models: Any, settings: Any, accelerator: Any, worker: int) -> None:
        if getattr(FakeExecutor, "fail", False):
            raise RuntimeError("EI binary refused the model")
        self.models_ = models

    def describe(self) -> str:
        return "fake TF Serving"


def fake_serving(monkeypatch: pytest.MonkeyPatch, binary: Any) -> None:
    module = types.ModuleType("eikit_tensorflow.serving")
    module.find_binary = lambda settings: binary  # type: ignore[attr-defined]
    module.ServingExecutor = FakeExecutor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "eikit_tensorflow.serving", module)
    import eikit_tensorflow

    monkeypatch.setattr(eikit_tensorflow, "serving", module, raising=False)


def test_a_binary_found_means_the_serving_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_serving(monkeypatch, Path("/usr/bin/tensorflow_model_server"))
    session = _session(Settings())
    executor = session.open_executor({"m": {1: Path("/nowhere")}})
    assert isinstance(executor, FakeExecutor) and session.executor_choice == "fake TF Serving"
    from eikit_tensorflow.session import execution_path

    assert execution_path(Settings())[0] == "binary"


def test_no_binary_or_no_module_means_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from eikit_tensorflow.session import execution_path

    fake_serving(monkeypatch, None)
    path, why = execution_path(Settings())
    assert path == "in-process" and "no tensorflow_model_server" in why
    import eikit_tensorflow

    monkeypatch.setitem(sys.modules, "eikit_tensorflow.serving", None)  # import fails
    monkeypatch.delattr(eikit_tensorflow, "serving", raising=False)
    path, why = execution_path(Settings())
    assert path == "in-process" and "does not import" in why


def test_eia_falls_back_to_in_process_on_the_cpu_unless_strict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.frameworks import save_tf_linear

    save_tf_linear(tmp_path)
    fake_serving(monkeypatch, Path("/opt/eikit/bin/tensorflow_model_server"))
    monkeypatch.setattr(FakeExecutor, "fail", True, raising=False)
    models = layout.discover(tmp_path)
    session = _session(Settings(), "eia")
    executor = session.open_executor(models)
    assert "in-process" in executor.describe() and "EI binary refused" in executor.describe()
    rows = executor.request(tmp_path.name, None, "predict", {"instances": [[1, 2, 3, 4]]})
    assert rows == {"predictions": [[1.0, 9.5]]}
    strict = _session(Settings(strict_accelerator=True), "eia")
    with pytest.raises(RuntimeError, match="refused"):
        strict.open_executor(models)
    with pytest.raises(RuntimeError, match="refused"):  # only EI falls back to in-process
        _session(Settings(), "cuda").open_executor(models)


def test_executor_errors_name_what_exists(tmp_path: Path) -> None:
    from eikit_tensorflow.inprocess import InProcessExecutor
    from tests.frameworks import save_tf_linear

    save_tf_linear(tmp_path)
    executor = InProcessExecutor(layout.discover(tmp_path))
    name = tmp_path.name
    assert executor.models() == {name: [1]}
    with pytest.raises(ModelNotFound, match=name):
        executor.request("other", None, "predict", {"instances": [[1, 2, 3, 4]]})
    with pytest.raises(ModelNotFound, match="versions: 1"):
        executor.request(name, 5, "predict", {"instances": [[1, 2, 3, 4]]})
    with pytest.raises(BadRequest, match="has: serving_default"):
        executor.request(name, 1, "predict", {"signature_name": "x", "instances": [[1]]})
    with pytest.raises(BadRequest, match=r"takes shape \[\?, 4\], got \[1, 3\]"):
        executor.request(name, 1, "predict", {"instances": [[1, 2, 3]]})
    with pytest.raises(BadRequest, match="unknown method"):
        executor.request(name, 1, "explain", {"instances": [[1, 2, 3, 4]]})
    with pytest.raises(BadRequest, match="regress"):
        executor.request(name, 1, "regress", {"examples": [{"x": 1.0}]})
    answer = executor.request(name, None, "predict", {"inputs": {"x": [[1, 2, 3, 4]]}})
    assert json.dumps(answer) == '{"outputs": [[1.0, 9.5]]}'


def test_detect_reports_the_execution_path(capsys: pytest.CaptureFixture) -> None:
    from eikit import cli

    assert cli.main(["detect", "--framework", "tensorflow", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (
        report["execution"] == "in-process"
        and "TensorFlow runs in the worker" in (report["execution_reason"])
    )
    assert cli.main(["detect", "--framework", "tensorflow"]) == 0
    assert "execution: in-process" in capsys.readouterr().out


def test_the_eia_images_binary_counts_as_the_ei_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probes.shutil, "which", lambda name: None)
    fake_serving(monkeypatch, probes.EIA_IMAGE_BINARY)
    binary, why = probes.find_ei_binary(Settings())
    assert binary == probes.EIA_IMAGE_BINARY and "EI TF Serving binary" in why
    fake_serving(monkeypatch, Path("/usr/local/bin/tensorflow_model_server"))
    binary, why = probes.find_ei_binary(Settings())
    assert binary is None and "not the EI build" in why


def test_the_binary_path_runs_one_worker_per_tfs_instance(tmp_path):
    from eikit.accelerators import cpu_probe
    from eikit_tensorflow import TensorFlowRuntime

    binary = tmp_path / "tensorflow_model_server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    runtime = TensorFlowRuntime()
    cpu = cpu_probe()
    with_binary = Settings(EIKIT_TFS_BINARY=str(binary), SAGEMAKER_TFS_INSTANCE_COUNT=3)
    assert runtime.default_workers(cpu, with_binary) == 3
    in_process = Settings(EIKIT_TFS_BINARY="none", SAGEMAKER_TFS_INSTANCE_COUNT=3)
    assert runtime.default_workers(cpu, in_process) == (os.cpu_count() or 1)
