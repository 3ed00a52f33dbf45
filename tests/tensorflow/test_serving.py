"""The TF Serving path against the stand-in ``tensorflow_model_server`` (no TF Serving binary
installs here): the config and command line eikit writes, the start-up, every request form
answered as the in-process path answers it (gRPC and REST clients), refusals with the same
statuses, a model that fails to load, a hung start-up, and the binary's life tied to its
worker's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from eikit.accelerators import ProbeResult
from eikit.errors import ConfigurationError, status_of
from eikit.settings import Settings
from tests.tensorflow.standin import fixtures

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_serving")

from eikit_tensorflow import layout, serving, tensor_protos, tfs_config  # noqa: E402
from eikit_tensorflow.inprocess import InProcessExecutor  # noqa: E402
from eikit_tensorflow.serving import ServingError, ServingExecutor  # noqa: E402

CPU = ProbeResult("cpu", True, "always there")
STARTUP = 240.0  # generous: a busy 2-core machine imports TensorFlow twice per start


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixtures.model_tree(tmp_path_factory.mktemp("tfs"))


@pytest.fixture(scope="module")
def models(tree: Path) -> layout.Models:
    return layout.discover(tree)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixtures.write_binary(tmp_path_factory.mktemp("bin"))


def settings(binary: Path, **values: Any) -> Settings:
    values.setdefault("startup_timeout", STARTUP)
    return Settings(tfs_binary=str(binary), **values)


@pytest.fixture(scope="module")
def in_process(models: layout.Models) -> Iterator[InProcessExecutor]:
    executor = InProcessExecutor(models)
    yield executor
    executor.close()


@pytest.fixture(scope="module", params=["grpc", "rest"])
def executor(request: Any, models: layout.Models, binary: Path) -> Iterator[ServingExecutor]:
    started = ServingExecutor(models, settings(binary, tfs_client=request.param), CPU, 0)
    yield started
    started.close()


# --- what eikit writes -------------------------------------------------------------------


def test_model_config_is_aws_format_and_tf_servings_proto(
    models: layout.Models, tree: Path
) -> None:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = tfs_config.model_config(models)
    assert text == (
        "model_config_list: {\n"
        "  config: {\n"
        "    name: 'half'\n"
        "    base_path: '%s/half'\n"
        "    model_platform: 'tensorflow'\n"
        "    model_version_policy: {\n"
        "      specific: {\n"
        "        versions: 1\n"
        "        versions: 2\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "  config: {\n"
        "    name: 'other'\n"
        "    base_path: '%s/other'\n"
        "    model_platform: 'tensorflow'\n"
        "    model_version_policy: {\n"
        "      specific: {\n"
        "        versions: 7\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "}\n" % (tree, tree)
    )
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in parsed.model_config_list.config] == ["half", "other"]
    assert list(parsed.model_config_list.config[0].model_version_policy.specific.versions) == [1, 2]


def test_batching_parameters_aws_defaults_settings_and_file() -> None:
    from google.protobuf import text_format

    from tests.tensorflow.standin.server import batching_message

    params, warnings = tfs_config.batching(None, None, None, None, 2, False)
    assert params == tfs_config.Batching(8, 1000, 2, 2)
    assert len(warnings) == 4 and "SAGEMAKER_TFS_MAX_BATCH_SIZE" in warnings[0]
    params, warnings = tfs_config.batching(32, 500, 3, None, 2, True)
    assert params == tfs_config.Batching(32, 500, 3, 100000000)
    assert len(warnings) == 1 and "SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES" in warnings[0]
    text = tfs_config.batching_config(params)
    assert text == (
        "max_batch_size { value: 32 }\n"
        "batch_timeout_micros { value: 500 }\n"
        "num_batch_threads { value: 3 }\n"
        "max_enqueued_batches { value: 100000000 }\n"
    )
    parsed = text_format.Parse(text, batching_message()())
    assert parsed.max_batch_size.value == 32 and parsed.max_enqueued_batches.value == 100000000


def test_command_line_in_aws_order() -> None:
    argv = tfs_config.command(Path("/b/tfs"), 9000, 8501, Path("/c.cfg"))
    assert argv == [
        "/b/tfs",
        "--port=9000",
        "--rest_api_port=8501",
        "--model_config_file=/c.cfg",
        "--max_num_load_retries=0",
    ]
    argv = tfs_config.command(Path("/b/tfs"), 1, 2, Path("/c"), Path("/batch"), 3, 4, 0.4)
    assert argv[5:] == [
        "--enable_batching=true",
        "--batching_parameters_file=/batch",
        "--tensorflow_intra_op_parallelism=3",
        "--tensorflow_inter_op_parallelism=4",
        "--per_process_gpu_memory_fraction=0.4",
    ]
    assert tfs_config.gpu_memory_fraction(1) is None
    assert tfs_config.gpu_memory_fraction(3) == 0.2667


def test_settings_read_under_awss_names(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {
        "SAGEMAKER_TFS_ENABLE_BATCHING": "true",
        "SAGEMAKER_TFS_MAX_BATCH_SIZE": "16",
        "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS": "200",
        "SAGEMAKER_TFS_NUM_BATCH_THREADS": "2",
        "SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES": "9",
        "SAGEMAKER_TFS_INTRA_OP_PARALLELISM": "3",
        "SAGEMAKER_TFS_INTER_OP_PARALLELISM": "1",
        "SAGEMAKER_TFS_INSTANCE_COUNT": "2",
        "SAGEMAKER_SAFE_PORT_RANGE": "10000-10999",
        "SAGEMAKER_BATCH": "true",
        "EIKIT_TFS_CLIENT": "REST",
    }
    for name, value in names.items():
        monkeypatch.setenv(name, value)
    read = Settings()
    assert read.tfs_enable_batching and read.batch_transform
    assert (read.tfs_max_batch_size, read.tfs_batch_timeout_micros) == (16, 200)
    assert (read.tfs_num_batch_threads, read.tfs_max_enqueued_batches) == (2, 9)
    assert (read.tfs_intra_op_parallelism, read.tfs_inter_op_parallelism) == (3, 1)
    assert serving.default_workers(read, CPU) == 2 and read.tfs_client == "rest"
    assert serving.ports(read, 0) == (10000, 10001)
    assert serving.ports(read, 3) == (10006, 10007)
    unset = Settings(tfs_instance_count=None)
    assert serving.default_workers(unset, ProbeResult("eia", True, "")) == 1
    assert serving.default_workers(unset, ProbeResult("cuda", True, "", count=4)) == 4
    assert serving.default_workers(unset, CPU) == (os.cpu_count() or 1)


def test_too_few_safe_ports() -> None:
    with pytest.raises(ConfigurationError, match="SAGEMAKER_SAFE_PORT_RANGE"):
        serving.ports(Settings(safe_port_range="10000-10002"), 1)


def test_find_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, binary: Path) -> None:
    assert serving.find_binary(Settings(tfs_binary=str(binary))) == binary
    assert serving.find_binary(Settings(tfs_binary="none")) is None
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(ConfigurationError, match="not an executable"):
        serving.find_binary(Settings(tfs_binary=str(plain)))
    monkeypatch.setattr(serving, "INSTALLED", tmp_path / "absent")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert serving.find_binary(Settings()) is None
    on_path = fixtures.write_binary(tmp_path, "amazonei_tensorflow_model_server")
    assert serving.find_binary(Settings()) == on_path
    assert serving.find_binary(Settings(tfs_binary=on_path.name)) == on_path


def test_client_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert serving.client_kind(Settings()) == "grpc"
    assert serving.client_kind(Settings(tfs_client="rest")) == "rest"
    monkeypatch.setattr(serving.grpc_client, "available", lambda: False)
    assert serving.client_kind(Settings()) == "rest"  # the eia image: no TensorFlow in Python
    with pytest.raises(ConfigurationError, match="grpc"):
        serving.client_kind(Settings(tfs_client="grpc"))


@pytest.mark.parametrize(
    "array",
    [
        np.array([[1.5, -2.0], [0.1, 3e38]], dtype=np.float32),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.array([1, -2], dtype=np.int8),
        np.array([True, False]),
        np.array([0.25], dtype=np.float16),
        np.array(7.0),
        np.array([b"a", b"\x00\xff"], dtype=object),
    ],
)
def test_tensor_protos_agree_with_tensorflow(array: np.ndarray) -> None:
    dtype = tf.as_dtype(array.dtype if array.dtype != object else tf.string).as_datatype_enum
    ours = tensor_protos.from_array(array, dtype)
    np.testing.assert_array_equal(tf.make_ndarray(ours), array)
    theirs = tf.make_tensor_proto(array)
    np.testing.assert_array_equal(tensor_protos.to_array(theirs), array)
    assert tensor_protos.to_array(theirs).dtype == (
        array.dtype if array.dtype != object else object
    )


def test_an_output_json_cannot_hold_is_refused() -> None:
    from tensorflow.core.framework import tensor_pb2

    with pytest.raises(tensor_protos.UnsupportedTensor, match="tensor type"):
        tensor_protos.to_array(tensor_pb2.TensorProto(dtype=21))  # DT_VARIANT


def test_tensor_protos_read_typed_and_compressed_values() -> None:
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=1, float_val=[2.5])
    proto.tensor_shape.dim.add(size=3)
    np.testing.assert_array_equal(tensor_protos.to_array(proto), np.float32([2.5, 2.5, 2.5]))
    assert tensor_protos.to_array(tf.make_tensor_proto([1, 2], dtype=tf.int32)).tolist() == [1, 2]


# --- the binary, running --------------------------------------------------------------------


def test_serves_every_model_on_its_own_ports(executor: ServingExecutor) -> None:
    assert executor.models() == {"half": [1, 2], "other": [7]}
    assert executor.rest_port() and executor.grpc_port()
    assert executor.rest_port() != executor.grpc_port()
    assert "TF Serving binary" in executor.describe()


@pytest.mark.parametrize("case", fixtures.REQUESTS, ids=lambda c: "%s-%s-%s" % c[:3])
def test_answers_as_in_process(
    executor: ServingExecutor, in_process: InProcessExecutor, case: Any
) -> None:
    model, version, method, body = case
    answer = executor.request(model, version, method, body)
    assert answer == in_process.request(model, version, method, body)
    json.dumps(answer)  # plain JSON values


@pytest.mark.parametrize("case", fixtures.REFUSED, ids=lambda c: "%s-%s-%s-%d" % (c[:3] + (c[4],)))
def test_refuses_as_in_process(
    executor: ServingExecutor, in_process: InProcessExecutor, case: Any
) -> None:
    model, version, method, body, status = case
    statuses = []
    for each in (executor, in_process):
        with pytest.raises(Exception) as caught:
            each.request(model, version, method, body)
        statuses.append(status_of(caught.value))
    assert statuses == [status, status], str(caught.value)


def test_version_two_answers_differently(executor: ServingExecutor) -> None:
    body = {"instances": [[0.0, 0.0, 0.0, 0.0]]}
    assert executor.request("half", 1, "predict", body) == {"predictions": [[0.0, 0.5]]}
    assert executor.request("half", None, "predict", body) == {"predictions": [[0.0, 1.0]]}


def test_settings_reach_the_binary(
    models: layout.Models, binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EIKIT_STANDIN_RECORD", str(tmp_path / "record"))
    chosen = settings(
        binary,
        tfs_enable_batching=True,
        tfs_max_batch_size=4,
        tfs_batch_timeout_micros=0,
        tfs_intra_op_parallelism=1,
        tfs_inter_op_parallelism=2,
    )
    executor = ServingExecutor(models, chosen, CPU, 0)
    try:
        (record,) = fixtures.records(tmp_path / "record")
        argv = record["argv"]
        assert "--enable_batching=true" in argv
        assert "--tensorflow_intra_op_parallelism=1" in argv
        assert "--tensorflow_inter_op_parallelism=2" in argv
        assert "--port=%d" % executor.grpc_port() in argv
        assert "max_batch_size { value: 4 }" in record["batching"]
        assert "batch_timeout_micros { value: 0 }" in record["batching"]
        assert "num_batch_threads { value: %d }" % (os.cpu_count() or 1) in record["batching"]
        assert record["config"] == tfs_config.model_config(models)
        assert executor.request("other", None, "predict", {"instances": [[1.0, 1.0, 1.0, 1.0]]})
    finally:
        executor.close()
    fixtures.wait_for(lambda: not fixtures.alive(record["pid"]), 30, "the binary to stop on close")


def test_a_model_that_fails_to_load(tmp_path: Path, binary: Path) -> None:
    broken = fixtures.model_tree(tmp_path, {"broken": [1]})
    (broken / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    with pytest.raises(ServingError) as caught:
        ServingExecutor(layout.discover(broken), settings(binary), CPU, 0)
    message = str(caught.value)
    assert "exited with code 255" in message
    assert "Failed to start server" in message and "did not become available" in message
    assert "broken version: 1" in message


def test_a_hung_start_up_times_out(
    models: layout.Models, binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EIKIT_STANDIN_HANG", "1")
    monkeypatch.setenv("EIKIT_STANDIN_RECORD", str(tmp_path / "record"))
    with pytest.raises(ServingError, match="SAGEMAKER_STARTUP_TIMEOUT=8s") as caught:
        ServingExecutor(models, settings(binary, startup_timeout=8), CPU, 0)
    assert "not answering" in str(caught.value)
    (record,) = fixtures.records(tmp_path / "record")
    fixtures.wait_for(lambda: not fixtures.alive(record["pid"]), 30, "the hung binary to be killed")


CHILD = textwrap.dedent(
    """
    import sys, time
    from eikit.accelerators import ProbeResult
    from eikit.settings import Settings
    from eikit_tensorflow import layout
    from eikit_tensorflow.serving import ServingExecutor
    executor = ServingExecutor(
        layout.discover(sys.argv[1]),
        Settings(tfs_binary=sys.argv[2], startup_timeout=240),
        ProbeResult("cpu", True, ""),
        0,
    )
    print("READY", flush=True)
    time.sleep(600)
    """
)


def _child(tree: Path, binary: Path, record: Path) -> subprocess.Popen:
    env = dict(os.environ, EIKIT_STANDIN_RECORD=str(record))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tree), str(binary)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == b"READY", line
    return child


def test_the_binary_dies_with_its_worker(tree: Path, binary: Path, tmp_path: Path) -> None:
    child = _child(tree, binary, tmp_path / "record")
    (record,) = fixtures.records(tmp_path / "record")
    assert fixtures.alive(record["pid"])
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    fixtures.wait_for(lambda: not fixtures.alive(record["pid"]), 30, "the orphaned binary to die")


def test_the_worker_ends_when_its_binary_dies(tree: Path, binary: Path, tmp_path: Path) -> None:
    child = _child(tree, binary, tmp_path / "record")
    (record,) = fixtures.records(tmp_path / "record")
    os.kill(record["pid"], signal.SIGKILL)
    try:
        assert child.wait(60) == serving.EXIT_BINARY_DIED
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.parametrize(
    "code, status",
    [
        ("NOT_FOUND", 404),
        ("INVALID_ARGUMENT", 400),
        ("FAILED_PRECONDITION", 400),
        ("UNAVAILABLE", 503),
        ("DEADLINE_EXCEEDED", 504),
        ("RESOURCE_EXHAUSTED", 507),
        ("INTERNAL", 500),
        ("UNIMPLEMENTED", 500),
        ("SOMETHING_NEW", 500),
    ],
)
def test_grpc_codes_as_eikit_errors(code: str, status: int) -> None:
    from eikit_tensorflow.rest_client import grpc_error

    error = grpc_error(code, "why")
    assert status_of(error) == status and "why" in error.message
