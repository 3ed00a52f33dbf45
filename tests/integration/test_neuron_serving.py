"""A model compiled by `eikit compile`, served by real `serve` processes over real HTTP on a
stand-in Inf1 host: device nodes and the driver's sysfs tree in folders
(tests/neuron_host.py), and the stand-in ``torch_neuron`` on the server's PYTHONPATH, which
writes each worker's ``NEURON_RT_*`` environment where the test reads it.

Not verified on real Inferentia: that the Neuron runtime honours NEURON_RT_VISIBLE_CORES /
NEURON_RT_NUM_CORES as set here, and that compiled graphs run on NeuronCores.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np
import pytest

from eikit.local import ServerProcess
from tests.integration.conftest import Endpoint, expected, save_linear_model
from tests.neuron_host import FAKES, fake_neuron_host, neuron_env
from tests.serving import ModelTree


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The linear test model compiled for inf1 at batch sizes 1, 4, 8 by the real CLI."""
    root = tmp_path_factory.mktemp("compiled")
    model = root / "model"
    model.mkdir()
    save_linear_model(model / "model.pt")
    (root / "request.json").write_text("[[1, 2, 3, 4]]")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-m", "eikit", "compile", str(model), "--generation", "inf1",
         "--example", str(root / "request.json"), "--batch-sizes", "1,4,8", "--in-process",
         "--output", str(root / "model-inf1.tar.gz")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "parity: the compiled graphs answer as the original" in done.stderr
    return root / "model-inf1.tar.gz"


def tree_of(archive: Path, base: Path) -> ModelTree:
    def unpack(model_dir: Path) -> None:
        with tarfile.open(str(archive)) as tar:
            tar.extractall(str(model_dir))  # noqa: S202 (the archive the test made)

    return ModelTree(base, unpack)


@contextlib.contextmanager
def serving(
    tree: ModelTree, env: Dict[str, str], log: Path, ready: bool = True
) -> Iterator[Endpoint]:
    server = ServerProcess(tree.base, dict(env, EIKIT_WORKER_THREADS="1"))
    server.start(stdout=log.open("wb"))
    endpoint = Endpoint(server, log)
    try:
        if ready:
            status = server.wait_ready(300)
            assert status == 200, "server not ready (%s):\n%s" % (status, endpoint.log())
        yield endpoint
    finally:
        server.stop()


def pins(record: Path) -> List[Dict[str, str]]:
    found = [json.loads(p.read_text()) for p in sorted(record.glob("import-*.json"))]
    return sorted((f["env"] for f in found), key=lambda e: e.get("NEURON_RT_VISIBLE_CORES", ""))


def rows(count: int) -> List[List[float]]:
    return [[float(i), float(i % 3), -1.0, 0.5 * i] for i in range(count)]


def test_one_worker_per_core_each_pinned_and_requests_padded_to_the_compiled_sizes(
    compiled: Path, tmp_path: Path
) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=1, cores=4, instance_type="Inf1")
    record = tmp_path / "record"
    tree = tree_of(compiled, tmp_path / "ml")
    env = neuron_env(dev, sysfs, record)  # SAGEMAKER_MODEL_SERVER_WORKERS unset
    env.pop("SAGEMAKER_MODEL_SERVER_WORKERS", None)
    with serving(tree, env, tmp_path / "server.log") as endpoint:
        # one worker per NeuronCore, each with its own core in its environment
        assert pins(record) == [
            {"NEURON_RT_VISIBLE_CORES": str(core), "NEURON_RT_NUM_CORES": "1"} for core in range(4)
        ]
        log = endpoint.log()
        assert "starting 4 pytorch worker(s)" in log
        assert log.count("loaded the model compiled for inf1 (NeuronCore v1)") == 4
        # 1..8 records run padded on the 1-, 4- or 8-record graph; 9..17 are split
        for count in (1, 2, 3, 4, 5, 7, 8, 9, 17):
            answer = endpoint.invoke(json.dumps(rows(count)).encode())
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json(), expected(rows(count)), rtol=1e-6)
        # a record of the wrong width: a 400 that names the compiled shape
        wrong = endpoint.invoke(b"[[1, 2, 3]]")
        assert wrong.status_code == 400
        assert "compiled (for inf1) for [N, 4] float32 with N in 1,4,8" in wrong.json()["error"]


def test_visible_cores_narrow_the_workers_and_unsplit_oversize_batches_get_413(
    compiled: Path, tmp_path: Path
) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=1, cores=4, instance_type="Inf1")
    record = tmp_path / "record"
    tree = tree_of(compiled, tmp_path / "ml")
    env = dict(neuron_env(dev, sysfs, record), NEURON_RT_VISIBLE_CORES="1,3",
               EIKIT_SPLIT_BATCHES="false")  # fmt: skip
    with serving(tree, env, tmp_path / "server.log") as endpoint:
        assert [p["NEURON_RT_VISIBLE_CORES"] for p in pins(record)] == ["1", "3"]
        assert endpoint.invoke(json.dumps(rows(8)).encode()).status_code == 200
        refused = endpoint.invoke(json.dumps(rows(9)).encode())
        assert refused.status_code == 413
        body = refused.json()
        assert body["code"] == "batch_too_large"
        assert "9 records" in body["error"] and "batch sizes 1, 4, 8" in body["error"]


def test_an_uncompiled_model_serves_on_the_cpu_with_the_compile_command(tmp_path: Path) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=1, cores=4, instance_type="Inf1")
    tree = ModelTree(tmp_path / "ml", lambda d: save_linear_model(d / "model.pt"))
    env = dict(neuron_env(dev, sysfs), SAGEMAKER_MODEL_SERVER_WORKERS="1")
    with serving(tree, env, tmp_path / "server.log") as endpoint:
        answer = endpoint.invoke(b"[[1, 2, 3, 4]]")
        assert answer.status_code == 200 and answer.json() == expected([[1, 2, 3, 4]])
        log = endpoint.log()
        command = (
            "eikit compile %s --generation inf1 --example REQUEST.json "
            "--output model-inf1.tar.gz" % tree.model_dir
        )
        warning = next(line for line in log.splitlines() if "did not load on neuron" in line)
        assert "WARNING" in warning and "not compiled for inf1" in warning
        assert command in warning and "falling back to cpu" in log


def test_strict_mode_refuses_an_uncompiled_model_on_neuron(tmp_path: Path) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=1, cores=4, instance_type="Inf1")
    tree = ModelTree(tmp_path / "ml", lambda d: save_linear_model(d / "model.pt"))
    env = dict(neuron_env(dev, sysfs), SAGEMAKER_MODEL_SERVER_WORKERS="1",
               EIKIT_STRICT_ACCELERATOR="true")  # fmt: skip
    with serving(tree, env, tmp_path / "server.log", ready=False) as endpoint:
        ping = endpoint.wait_failed(180)
        error = ping.json()["error"]
        assert "not compiled for inf1" in error
        assert "eikit compile %s --generation inf1" % tree.model_dir in error
