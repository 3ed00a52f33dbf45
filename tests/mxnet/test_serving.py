"""The MXNet runtime in a real ``serve`` process: default hooks over HTTP, EI chosen and
used through the stand-in ``eimx`` on the server's PYTHONPATH (with SageMaker's signal set),
fallback to CPU when the model does not load on EI, and the thread variables a worker sets
before the script imports mxnet."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from tests.frameworks import expected
from tests.mxnet.models import save_gluon_linear

FAKES = Path(__file__).parent / "fakes"
ROWS = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]


def npy(rows) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(rows, dtype=np.float32))
    return out.getvalue()


def ei_env(**extra: str) -> dict:
    path = os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": path, "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT": "true"}
    env.update(extra)
    return env


def test_a_module_checkpoint_is_served_with_the_default_hooks(tree, start):
    endpoint = start(tree)
    assert endpoint.invoke(json.dumps(ROWS).encode()).json() == expected(ROWS)
    answer = endpoint.invoke(b"1,2,3,4\n5,6,7,8\n", "text/csv", "text/csv")
    assert answer.status_code == 200 and answer.text == "1.0,9.5\n5.0,21.5\n"
    answer = endpoint.invoke(npy(ROWS), "application/x-npy", "application/x-npy")
    array = np.load(io.BytesIO(answer.content))
    assert array.dtype == np.float32 and array.tolist() == expected(ROWS)
    assert "loaded MXNet Module" in endpoint.log() and "accelerator cpu" in endpoint.log()


def test_a_gluon_export_is_served_with_the_default_hooks(tmp_path, start):
    from tests.serving import ModelTree

    tree = ModelTree(tmp_path / "ml", save_gluon_linear)
    endpoint = start(tree)
    assert endpoint.invoke(json.dumps(ROWS).encode()).json() == expected(ROWS)
    # one CSV row is one record (AWS's Gluon handler refused CSV with a 415)
    answer = endpoint.invoke(b"1,2,3,4\n", "text/csv")
    assert answer.status_code == 200 and answer.json() == expected(ROWS[:1])
    assert "loaded MXNet Gluon export" in endpoint.log()


def test_ei_is_chosen_and_used_when_signalled(tree, start):
    endpoint = start(tree, ei_env())
    assert endpoint.invoke(json.dumps(ROWS).encode()).json() == expected(ROWS)
    log = endpoint.log()
    assert "accelerator eia (EI accelerator attached" in log and "eimx" in log
    assert "on eia(0)" in log  # the Module was bound to the stand-in mx.eia()
    assert "model loaded on eia (eia:0)" in log


def test_a_model_that_fails_on_ei_falls_back_to_cpu_loudly(tree, start):
    endpoint = start(tree, ei_env(EIKIT_FAKE_EIA_FAIL="EI accelerator unreachable"))
    assert endpoint.invoke(json.dumps(ROWS).encode()).json() == expected(ROWS)
    log = endpoint.log()
    assert "model did not load on eia (MXNetError: EI accelerator unreachable)" in log
    assert "falling back to cpu" in log and "model loaded on cpu (cpu)" in log


def test_strict_accelerator_fails_instead_of_falling_back(tree, start):
    env = ei_env(EIKIT_FAKE_EIA_FAIL="EI accelerator unreachable", EIKIT_STRICT_ACCELERATOR="true")
    endpoint = start(tree, env, ready=False)
    failed = endpoint.wait_failed(180)
    assert "EI accelerator unreachable" in failed.text


def test_ei_signal_without_an_ei_build_says_why_and_serves_on_cpu(tree, start):
    endpoint = start(tree, {"SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT": "true"})
    assert endpoint.invoke(json.dumps(ROWS).encode()).json() == expected(ROWS)
    assert "eia: SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true but mxnet cannot use EI" in (
        endpoint.log()
    )


THREADS_SCRIPT = """
import json
import os

# read when the script is imported: before any session, as mxnet reads them on import
SEEN = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS")}

import mxnet as mx


def output_fn(prediction, accept):
    return json.dumps(SEEN), accept
"""


def test_thread_variables_are_set_before_the_script_imports_mxnet(tree, start):
    tree.script(THREADS_SCRIPT)
    endpoint = start(tree, {"EIKIT_WORKER_THREADS": "3"})
    seen = endpoint.invoke(json.dumps(ROWS).encode()).json()
    assert seen == {"OMP_NUM_THREADS": "3", "MXNET_CPU_WORKER_NTHREADS": "1"}


def test_thread_variables_the_user_set_are_kept(tree, start):
    tree.script(THREADS_SCRIPT)
    env = {"OMP_NUM_THREADS": "2", "MXNET_CPU_WORKER_NTHREADS": "2", "EIKIT_WORKER_THREADS": "3"}
    seen = start(tree, env).invoke(json.dumps(ROWS).encode()).json()
    assert seen == {"OMP_NUM_THREADS": "2", "MXNET_CPU_WORKER_NTHREADS": "2"}


def test_nothing_loadable_fails_the_load_naming_the_files(tmp_path, start):
    from tests.serving import ModelTree

    tree = ModelTree(tmp_path / "ml", lambda model_dir: (model_dir / "model.pt").write_text(""))
    failed = start(tree, ready=False).wait_failed(180)
    assert "no MXNet model" in failed.text and "model.pt" in failed.text
