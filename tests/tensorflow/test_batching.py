"""Dynamic batching with TensorFlow: which settings turn it on (AWS's TF Serving names drive
eikit's batching when TensorFlow runs in the worker), and the scripted path answering each
request alone. Answers against unbatched ones: tests/contract/test_batching_contract.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from eikit.settings import Settings
from eikit_tensorflow.runtime import TensorFlowRuntime
from tests.contract.test_batching_contract import send_together
from tests.frameworks import expected, save_tf_linear
from tests.serving import ModelTree, StartFn, starter


def batching(**values: object) -> tuple:
    return TensorFlowRuntime().batching(Settings(**values))


def test_tfs_batching_settings_drive_batching_in_the_worker() -> None:
    in_process = {"tfs_binary": "none", "tfs_enable_batching": True}
    assert batching(**in_process) == (8, 0.001)  # AWS's defaults: 8, 1000 µs
    assert batching(**in_process, tfs_max_batch_size=32, tfs_batch_timeout_micros=2500) == (
        32,
        0.0025,
    )
    assert batching(**in_process, ts_batch_size=4, ts_max_batch_delay=7) == (4, 0.007)
    assert batching(tfs_binary="none")[0] == 1  # off unless configured


def test_a_tf_serving_binary_batches_by_itself(tmp_path: Path) -> None:
    binary = tmp_path / "tensorflow_model_server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    assert os.access(binary, os.X_OK)
    assert batching(tfs_binary=str(binary), tfs_enable_batching=True) == (1, 0.0)


SCRIPT = """
import json

def input_handler(data, context):
    rows = json.loads(data.read().decode("utf-8"))
    return json.dumps({"instances": rows})

def output_handler(response, context):
    return response.content, context.accept_header
"""


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartFn]:
    yield from starter(tmp_path, {"EIKIT_FRAMEWORK": "tensorflow"})


def test_a_scripted_model_answers_each_request_in_a_batch(tmp_path: Path, start: StartFn) -> None:
    tree = ModelTree(tmp_path / "ml", save_tf_linear)
    tree.script(SCRIPT)
    endpoint = start(
        tree,
        {
            "EIKIT_TFS_BINARY": "none",
            "SAGEMAKER_TFS_ENABLE_BATCHING": "true",
            "SAGEMAKER_TFS_MAX_BATCH_SIZE": "8",
            "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS": "300000",
        },
    )
    rows = [[[i, 1.0, 2.0, 3.0]] for i in range(10)]
    answers = send_together(endpoint.url, [json.dumps(r).encode() for r in rows])
    for row, (status, body) in zip(rows, answers):
        assert status == 200, body
        assert json.loads(body)["predictions"] == expected(row)
