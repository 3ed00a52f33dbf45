"""A real ``serve`` process on the TF Serving path, the stand-in ``tensorflow_model_server``
as its binary: two workers with a binary each, answers as in-process, a binary killed
mid-run (its worker replaced, queued requests resent, ``/ping`` back to 200), EI's fallback
to in-process TensorFlow on the CPU when the binary cannot load the model (and the failed
load with EIKIT_STRICT_ACCELERATOR), and a binary hung at start-up."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests

from eikit.local import ServerProcess
from tests.serving import Endpoint, ModelTree
from tests.tensorflow.helpers import BASE_ENV, post
from tests.tensorflow.standin import fixtures

pytest.importorskip("tensorflow_serving")

from eikit_tensorflow import layout  # noqa: E402
from eikit_tensorflow.inprocess import InProcessExecutor  # noqa: E402

READY = 300.0  # two TensorFlow imports and three SavedModels per worker, on 2 busy cores


def start(
    base: Path, env: Dict[str, str], ready: bool = True, script: Optional[str] = None
) -> Endpoint:
    tree = ModelTree(base / "ml", lambda model_dir: fixtures.model_tree(model_dir.parent))
    if script is not None:
        tree.script(script)
    settings = dict(BASE_ENV)
    settings.update(env)
    log_path = base / "server.log"
    server = ServerProcess(tree.base, settings)
    server.start(stdout=log_path.open("wb"))
    endpoint = Endpoint(server, log_path)
    if ready:
        status = server.wait_ready(READY)
        assert status == 200, "server not ready (%s):\n%s" % (status, endpoint.log())
    return endpoint


@pytest.fixture()
def servers() -> Iterator[List[Endpoint]]:
    started: List[Endpoint] = []
    yield started
    for endpoint in started:
        endpoint.server.stop()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("tfs-serve")
    binary = fixtures.write_binary(base / "bin")
    record = base / "record"
    env = {
        "EIKIT_TFS_BINARY": str(binary),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "EIKIT_STANDIN_RECORD": str(record),
    }
    endpoint = start(base, env)
    try:
        yield endpoint, record
    finally:
        endpoint.server.stop()


@pytest.fixture(scope="module")
def in_process(two_workers: Any) -> InProcessExecutor:
    endpoint, _ = two_workers
    return InProcessExecutor(layout.discover(Path(endpoint.server.base_dir) / "model"))


def answer(endpoint: Endpoint, body: Any, attributes: Optional[str] = None) -> Any:
    response = post(endpoint, body, attributes=attributes)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_worker_runs_its_own_binary(two_workers: Any, in_process: InProcessExecutor) -> None:
    endpoint, record = two_workers
    started = fixtures.records(record)
    assert len(started) == 2
    ports = {arg for r in started for arg in r["argv"] if arg.startswith(("--port", "--rest"))}
    assert len(ports) == 4  # two binaries, each with its own gRPC and REST port
    assert "TF Serving binary" in endpoint.log()
    for model, version, method, body in fixtures.REQUESTS:
        attributes = "tfs-model-name=%s" % model
        if version is not None:
            attributes += ",tfs-model-version=%d" % version
        attributes += ",tfs-method=%s" % method
        assert answer(endpoint, body, attributes) == in_process.request(
            model, version, method, body
        )
    refused = post(endpoint, {"instances": [[1.0]]}, attributes="tfs-model-name=nope")
    assert refused.status_code == 404, refused.text


def test_a_binary_killed_mid_run(two_workers: Any) -> None:
    endpoint, record = two_workers
    body = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
    expected = answer(endpoint, body)
    statuses: List[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set() and len(statuses) < 2000:
            try:
                response = post(endpoint, body)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    assert response.json() == expected
            except requests.RequestException:
                statuses.append(-1)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        fixtures.wait_for(lambda: len(statuses) >= 20, 120, "requests before the crash")
        victim = fixtures.records(record)[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        fixtures.wait_for(lambda: len(fixtures.records(record)) >= 3, READY, "a new binary")
        fixtures.wait_for(lambda: endpoint.ping().status_code == 200, READY, "/ping 200")
        seen = len(statuses)
        fixtures.wait_for(lambda: len(statuses) >= seen + 20, 120, "requests after the crash")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    failed = [status for status in statuses if status != 200]
    # Only what the dead binary was running fails (500/503); queued requests are resent.
    assert set(failed) <= {500, 503}, failed
    assert len(failed) <= 6, failed
    assert "exited with code" in endpoint.log()
    assert all(post(endpoint, body).status_code == 200 for _ in range(10))


def eia_env(base: Path, **extra: str) -> Dict[str, str]:
    binary = fixtures.write_binary(base / "bin", "amazonei_tensorflow_model_server")
    env = {
        "EIKIT_TFS_BINARY": str(binary),
        "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT": "true",
        "EIKIT_ACCELERATOR": "eia",
        "EIKIT_STANDIN_FAIL_LOAD": "1",
    }
    env.update(extra)
    return env


def test_eia_falls_back_to_the_cpu_when_the_binary_cannot_load(
    tmp_path: Path, servers: List[Endpoint]
) -> None:
    endpoint = start(tmp_path, eia_env(tmp_path))
    servers.append(endpoint)
    log = endpoint.log()
    assert "falling back to in-process TensorFlow on the CPU" in log
    assert "EIKIT_STANDIN_FAIL_LOAD" in log  # the binary's own error is in the warning
    assert answer(endpoint, {"instances": [[1.0, 2.0, 3.0, 4.0]]}) == {"predictions": [[1.0, 10.0]]}


def test_strict_eia_fails_the_load_with_the_binarys_error(
    tmp_path: Path, servers: List[Endpoint]
) -> None:
    endpoint = start(tmp_path, eia_env(tmp_path, EIKIT_STRICT_ACCELERATOR="true"), ready=False)
    servers.append(endpoint)
    ping = endpoint.wait_failed(READY)
    assert "TF Serving exited" in ping.text or "Failed to start server" in ping.text, ping.text


def test_a_binary_hung_at_start_up(tmp_path: Path, servers: List[Endpoint]) -> None:
    binary = fixtures.write_binary(tmp_path / "bin")
    env = {
        "EIKIT_TFS_BINARY": str(binary),
        "EIKIT_STANDIN_HANG": "1",
        "SAGEMAKER_STARTUP_TIMEOUT": "30",
    }
    endpoint = start(tmp_path, env, ready=False)
    servers.append(endpoint)
    ping = endpoint.wait_failed(READY)
    assert "SAGEMAKER_STARTUP_TIMEOUT" in ping.text, ping.text


HANDLER = """
import json

import requests

def handler(data, context):
    # AWS's pattern: the script posts to TF Serving itself
    response = requests.post(context.rest_uri, data=data.read())
    if response.status_code != 200:
        raise ValueError(response.text)
    return json.dumps({"uri": context.rest_uri, "answer": response.json()}), "application/json"
"""


def test_scripts_post_to_the_binarys_rest_api(tmp_path: Path, servers: List[Endpoint]) -> None:
    record = tmp_path / "record"
    binary = fixtures.write_binary(tmp_path / "bin")
    env = {"EIKIT_TFS_BINARY": str(binary), "EIKIT_STANDIN_RECORD": str(record)}
    endpoint = start(tmp_path, env, script=HANDLER)
    servers.append(endpoint)
    got = answer(endpoint, {"instances": [[1.0, 2.0, 3.0, 4.0]]})
    assert got["answer"] == {"predictions": [[1.0, 10.0]]}
    (started,) = fixtures.records(record)
    (rest,) = [arg.split("=")[1] for arg in started["argv"] if arg.startswith("--rest_api_port=")]
    assert got["uri"].startswith("http://localhost:%s/v1/models/half" % rest), got
