"""The kernel's OOM killer on a multi-model endpoint, for real: the pytorch cpu image run with a
memory limit, a model whose ``model_fn`` allocates until the kernel kills its worker. The load
must answer 507 (SageMaker then unloads models), naming the OOM killer, and the endpoint must
go on loading and serving other models."""

from __future__ import annotations

import json
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Tuple

import pytest

from eikit.local import free_port

pytestmark = pytest.mark.container

HOG = """
def model_fn(model_dir):
    blocks = []
    while True:  # until the kernel's OOM killer stops this worker
        blocks.append(b"\\x01" * (32 << 20))
"""
FINE = """
import json
def model_fn(model_dir):
    return "fine"
def predict_fn(data, model):
    return model
def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""


def call(url: str, body: Any = None) -> Tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_a_worker_the_oom_killer_stops_during_load_is_507(
    engine: Any, pytorch_cpu_image: str, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    for index, script in enumerate((HOG, FINE)):
        code = models / ("%05d" % index) / "model" / "code"
        code.mkdir(parents=True)
        (code / "inference.py").write_text(textwrap.dedent(script))
    port = free_port()
    limit = 700 * 1024 * 1024
    container = engine.create_container(
        pytorch_cpu_image,
        command=["serve"],
        environment={
            "SAGEMAKER_MULTI_MODEL": "true",
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "EIKIT_WORKER_THREADS": "1",
        },
        volumes=["/opt/ml/models"],
        host_config=engine.create_host_config(
            network_mode="host",
            mem_limit=limit,
            memswap_limit=limit,
            binds={str(models): {"bind": "/opt/ml/models", "mode": "ro"}},
        ),
    )
    url = "http://127.0.0.1:%d" % port
    try:
        engine.start(container)
        deadline = time.monotonic() + 120
        while True:
            try:
                if call(url + "/ping")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, engine.logs(container).decode()[-3000:]
            time.sleep(0.2)
        status, answer = call(
            url + "/models", {"model_name": "hog", "url": "/opt/ml/models/00000/model"}
        )
        logs = engine.logs(container).decode(errors="replace")[-3000:]
        assert status == 507, (answer, logs)
        assert "OOM killer" in answer["error"] and answer["code"] == "insufficient_memory"
        status, answer = call(
            url + "/models", {"model_name": "fine", "url": "/opt/ml/models/00001/model"}
        )
        assert status == 200, answer
        assert call(url + "/models/fine/invoke", [1]) == (200, "fine")
    finally:
        engine.remove_container(container, force=True)
