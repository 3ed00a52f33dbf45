"""The command line as a user runs it: `eikit local` on a model.tar.gz, `eikit invoke`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from eikit.local import free_port
from eikit.ping import wait_for_ping
from tests.integration.conftest import expected, save_linear_model

BIN = Path(sys.executable).parent


def _console_script(name: str) -> str:
    path = shutil.which(name, path=str(BIN))
    if path is None:
        pytest.skip("console script %s is not installed next to %s" % (name, sys.executable))
    return path


def test_local_serves_a_model_tar_gz_and_invoke_prints_the_answer(tmp_path):
    source = tmp_path / "artifact"
    (source / "code").mkdir(parents=True)
    save_linear_model(source / "model.pt")
    (source / "code" / "inference.py").write_text(
        "def output_fn(prediction, accept):\n"
        "    import json\n"
        "    return json.dumps({'y': prediction.tolist()}), 'application/json'\n"
    )
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=".")
    port = free_port()
    env = dict(
        os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), SAGEMAKER_MODEL_SERVER_WORKERS="1"
    )
    server = subprocess.Popen(
        [_console_script("eikit"), "local", "--model-dir", str(archive), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = "http://127.0.0.1:%d" % port
        assert wait_for_ping(url, time.monotonic() + 120, server) == 200
        request = tmp_path / "request.json"
        request.write_text(json.dumps([[1, 2, 3, 4]]))
        out = subprocess.run(
            [_console_script("eikit"), "invoke", str(request), "--url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"y": expected([[1, 2, 3, 4]])}
        refused = subprocess.run(
            [
                _console_script("eikit"),
                "invoke",
                "--json",
                "[[1,2,3,4]]",
                "--content-type",
                "image/png",
                "--url",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "HTTP 415" in refused.stderr
        # the archive was extracted under the cache, never next to the user's files
        assert list((tmp_path / "cache" / "eikit" / "local").glob("*/extracted-*/model.pt"))
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0


def test_serve_console_script_is_the_container_entrypoint(tmp_path):
    (tmp_path / "model").mkdir()
    save_linear_model(tmp_path / "model" / "model.pt")
    port = free_port()
    env = dict(
        os.environ,
        SAGEMAKER_BASE_DIR=str(tmp_path),
        SAGEMAKER_BIND_TO_PORT=str(port),
        EIKIT_HOST="127.0.0.1",
        SAGEMAKER_MODEL_SERVER_WORKERS="1",
    )
    server = subprocess.Popen([_console_script("serve")], env=env, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_ping("http://127.0.0.1:%d" % port, time.monotonic() + 120, server) == 200
    finally:
        server.terminate()
        assert server.wait(30) == 0


def test_invoke_without_a_server_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "eikit",
            "invoke",
            "--json",
            "[1]",
            "--url",
            "http://127.0.0.1:%d" % free_port(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "cannot reach" in out.stderr and "Traceback" not in out.stderr


def test_local_with_a_missing_model_dir_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "eikit", "local", "--model-dir", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_local_multi_model_loads_every_model_and_invoke_targets_one(tmp_path):
    models = tmp_path / "models"
    folder = models / "by-folder"
    folder.mkdir(parents=True)
    save_linear_model(folder / "model.pt")
    packed = tmp_path / "packed"
    (packed / "code").mkdir(parents=True)
    save_linear_model(packed / "model.pt")
    (packed / "code" / "inference.py").write_text(
        "def output_fn(prediction, accept):\n    return 'from the archive'\n"
    )
    with tarfile.open(models / "from.archive.tar.gz", "w:gz") as tar:
        tar.add(packed, arcname=".")
    port = free_port()
    env = dict(
        os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), SAGEMAKER_MODEL_SERVER_WORKERS="1"
    )
    command = [_console_script("eikit"), "local", "--multi-model", "--model-dir", str(models)]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = "http://127.0.0.1:%d" % port
        assert wait_for_ping(url, time.monotonic() + 120, server) == 200
        assert server.stderr is not None
        for line in server.stderr:  # the loader reports each model, then a summary
            if "model(s) loaded" in line:
                assert line.startswith("eikit: 2 of 2 model(s) loaded"), line
                break

        def invoke(*extra):
            command = [_console_script("eikit"), "invoke", "--json", "[[1,2,3,4]]", "--url", url]
            return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=60)

        folder_answer = invoke("--target-model", "by-folder")
        assert folder_answer.returncode == 0, folder_answer.stderr
        assert json.loads(folder_answer.stdout) == expected([[1, 2, 3, 4]])
        archive_answer = invoke("--target-model", "from.archive")
        assert archive_answer.stdout.strip() == "from the archive"
        missing = invoke("--target-model", "nobody")
        assert missing.returncode == 1 and "HTTP 404" in missing.stderr
        untargeted = invoke()
        assert untargeted.returncode == 1 and "X-Amzn-SageMaker-Target-Model" in untargeted.stdout
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
