"""Workers forked from the template process (``EIKIT_WORKER_START=fork``, the default for
PyTorch) against spawned ones: who their parent is, what the template holds, crashes,
timeouts, a multi-model endpoint, a killed frontend, and identical answers."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from eikit.accelerators import ProbeResult
from eikit.procs import alive, children, is_template, template_pids, worker_pids
from eikit.runtime import find_runtime
from tests.frameworks import expected
from tests.integration.mme import BODY, ROWS, endpoints

# Writes who imported it (never the template), and answers with what each worker sees.
SCRIPT = """
import json, os, random, sys, time, torch
MARKERS = os.environ["TEST_MARKERS"]
open(os.path.join(MARKERS, "imported-%d" % os.getpid()), "w").close()
def model_fn(model_dir):
    return torch.jit.load(os.path.join(model_dir, "model.pt"))
def input_fn(input_data, content_type):
    if input_data == "exit":
        os._exit(3)
    if input_data.startswith("sleep "):
        time.sleep(float(input_data.split()[1]))
    return torch.tensor(json.loads(input_data) if input_data.startswith("[") else [[1.0] * 4])
def output_fn(prediction, accept, context):
    context.set_response_header(0, "X-Worker-Pid", str(os.getpid()))
    return json.dumps({
        "prediction": prediction.tolist(),
        "threads": torch.get_num_threads(),
        "cuda_initialized": torch.cuda.is_initialized(),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "script_on_path": os.path.dirname(os.path.abspath(__file__)) in sys.path,
        "stop_signals": [getattr(handler, "__qualname__", str(handler)) for handler in (
            __import__("signal").getsignal(2), __import__("signal").getsignal(15))],
    })
"""


def _until(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def _threads(pid: int) -> int:
    return len(os.listdir("/proc/%d/task" % pid))


def _maps(pid: int) -> str:
    with open("/proc/%d/maps" % pid) as maps:
        return maps.read()


@pytest.fixture
def scripted(tree: Any, tmp_path: Path) -> Dict[str, str]:
    tree.script(SCRIPT)
    markers = tmp_path / "markers"
    markers.mkdir()
    return {"TEST_MARKERS": str(markers)}


def _imported_by(env: Dict[str, str]) -> List[int]:
    return sorted(int(name.split("-")[1]) for name in os.listdir(env["TEST_MARKERS"]))


def test_workers_are_forked_from_a_template_that_holds_torch_but_no_script(
    tree: Any, start: Any, scripted: Dict[str, str]
) -> None:
    endpoint = start(tree, dict(scripted, SAGEMAKER_MODEL_SERVER_WORKERS="2"))
    frontend = endpoint.server.process.pid
    (template,) = template_pids(frontend)
    workers = worker_pids(frontend)
    assert len(workers) == 2 and set(workers) == set(children(template))
    assert _threads(template) == 1  # nothing for a fork to lose
    assert "libtorch" in _maps(template)  # the framework is imported once, here
    assert "model.pt" not in _maps(template)
    assert _imported_by(scripted) == workers  # the script only in the workers
    answer = endpoint.invoke(json.dumps(ROWS).encode())
    assert answer.status_code == 200, endpoint.log()
    assert int(answer.headers["x-worker-pid"]) in workers
    assert answer.json()["prediction"] == expected(ROWS)
    assert answer.json()["cuda_initialized"] is False


def test_a_killed_forked_worker_is_replaced_by_a_new_fork_and_serves(
    tree: Any, start: Any, scripted: Dict[str, str]
) -> None:
    endpoint = start(tree, scripted)
    frontend = endpoint.server.process.pid
    (template,) = template_pids(frontend)
    (worker,) = worker_pids(frontend)
    os.kill(worker, signal.SIGKILL)
    _until(lambda: "replaced and ready" in endpoint.log(), "the replacement")
    (replacement,) = worker_pids(frontend)
    assert replacement != worker and children(template) == [replacement]
    assert template_pids(frontend) == [template]  # the same template forked it
    answer = endpoint.invoke(json.dumps(ROWS).encode())
    assert answer.status_code == 200 and int(answer.headers["x-worker-pid"]) == replacement


def test_a_forked_worker_that_crashes_or_times_out_is_replaced(
    tree: Any, start: Any, scripted: Dict[str, str]
) -> None:
    endpoint = start(tree, dict(scripted, SAGEMAKER_MODEL_SERVER_TIMEOUT="2"))
    frontend = endpoint.server.process.pid
    (first,) = worker_pids(frontend)
    crashed = endpoint.invoke(b"exit")
    assert crashed.status_code == 500 and "died" in crashed.json()["error"]
    _until(lambda: endpoint.server.wait_ready(60) == 200 and worker_pids(frontend), "a worker")
    (second,) = worker_pids(frontend)
    assert second != first
    slow = endpoint.invoke(b"sleep 60")
    assert slow.status_code == 504 and slow.json()["code"] == "prediction_timeout"
    _until(lambda: not alive(second), "the timed-out worker to die", 30)
    _until(lambda: endpoint.log().count("replaced and ready") >= 2, "the second replacement")
    (third,) = worker_pids(frontend)
    assert third not in (first, second)
    assert endpoint.invoke(b"[[1.0, 2.0, 3.0, 4.0]]").status_code == 200


def test_a_killed_frontend_leaves_no_template_and_no_worker(
    tree: Any, start: Any, scripted: Dict[str, str]
) -> None:
    endpoint = start(tree, dict(scripted, SAGEMAKER_MODEL_SERVER_WORKERS="2"))
    process = endpoint.server.process
    (template,) = template_pids(process.pid)
    workers = worker_pids(process.pid)
    assert len(workers) == 2
    process.kill()
    process.wait(10)
    _until(lambda: not any(alive(pid) for pid in [template, *workers]), "orphans to die", 10)


def test_sigterm_stops_the_template_after_its_workers(
    tree: Any, start: Any, scripted: Dict[str, str]
) -> None:
    endpoint = start(tree, scripted)
    process = endpoint.server.process
    (template,) = template_pids(process.pid)
    workers = worker_pids(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    _until(lambda: not any(alive(pid) for pid in [template, *workers]), "processes to end", 10)
    assert "exited; its workers went with it" not in endpoint.log()  # stopped, not lost


def test_a_template_that_dies_takes_its_workers_and_a_new_one_replaces_them(
    tree: Any, start: Any, scripted: Dict[str, str]
) -> None:
    endpoint = start(tree, scripted)
    frontend = endpoint.server.process.pid
    (template,) = template_pids(frontend)
    (worker,) = worker_pids(frontend)
    os.kill(template, signal.SIGKILL)
    _until(lambda: not alive(worker), "its worker to die (PDEATHSIG)", 30)
    _until(lambda: "replaced and ready" in endpoint.log(), "a replacement")
    (new_template,) = template_pids(frontend)
    assert new_template != template and len(children(new_template)) == 1
    assert endpoint.invoke(b"[[1.0, 2.0, 3.0, 4.0]]").status_code == 200


def test_fork_and_spawn_answer_alike(tree: Any, start: Any, scripted: Dict[str, str]) -> None:
    """Same answers, thread counts, environment, path and signal handlers either way.
    EIKIT_WORKER_THREADS unset: each worker sizes torch's threads itself, after the fork."""
    answers = {}
    for how in ("spawn", "fork"):
        env: Dict[str, Any] = dict(scripted, EIKIT_WORKER_START=how)
        env.update(SAGEMAKER_MODEL_SERVER_WORKERS="2", EIKIT_WORKER_THREADS=None)
        endpoint = start(tree, env)
        frontend = endpoint.server.process.pid
        assert bool(template_pids(frontend)) == (how == "fork")
        bodies = [b"[[1.0, 2.0, 3.0, 4.0]]", b"[[0.5, -1.0, 2.0, 1e3], [0.0, 0.0, 0.0, 0.0]]"]
        answers[how] = [endpoint.invoke(body).json() for body in bodies]
        endpoint.server.stop()
    assert answers["fork"] == answers["spawn"]
    assert answers["fork"][0]["prediction"] == expected([[1.0, 2.0, 3.0, 4.0]])
    assert answers["fork"][0]["script_on_path"] is True


def test_spawn_keeps_workers_the_frontends_children(
    tree: Any, start: Any, scripted: Dict[str, str]
) -> None:
    endpoint = start(tree, dict(scripted, EIKIT_WORKER_START="spawn"))
    frontend = endpoint.server.process.pid
    assert template_pids(frontend) == []
    (worker,) = children(frontend)
    assert not is_template(worker)
    assert _imported_by(scripted) == [worker]


@pytest.fixture
def mme(tmp_path: Path) -> Iterator[Any]:
    yield from endpoints(tmp_path)


def test_multi_model_loads_and_unloads_forked_workers(mme: Any) -> None:
    models = mme()
    frontend = int(models.pid)
    for name in ("a", "b"):
        assert models.load(name, models.make(name)).status_code == 200
    (template,) = template_pids(frontend)
    workers = children(template)
    assert len(workers) == 2 and worker_pids(frontend) == workers
    for name in ("a", "b"):
        assert models.invoke(name).json() == expected(ROWS)
    assert models.delete("a").status_code == 200
    _until(lambda: len(children(template)) == 1, "a's worker to end")
    assert models.invoke("b", BODY).json() == expected(ROWS)
    assert template_pids(frontend) == [template]  # unloading a model keeps the template


def test_a_model_with_its_own_copy_of_a_template_package_gets_spawned_workers(
    tree: Any, start: Any, scripted: Dict[str, str]
) -> None:
    """The template imported tqdm (torch does); a model whose code/lib holds its own must
    import that copy, which only a new interpreter can."""
    shadow = tree.model_dir / "code" / "lib" / "tqdm"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("THE_MODELS_OWN = True\n")
    tree.script(SCRIPT + "\nimport tqdm\nassert tqdm.THE_MODELS_OWN\n")
    endpoint = start(tree, scripted)
    frontend = endpoint.server.process.pid
    (worker,) = worker_pids(frontend)
    assert worker in children(frontend) and not is_template(worker)
    assert all(children(template) == [] for template in template_pids(frontend))
    assert "spawned, not forked: the model's own tqdm in" in endpoint.log()
    assert endpoint.invoke(b"[[1.0, 2.0, 3.0, 4.0]]").status_code == 200


def test_pytorch_forks_on_cpu_only_until_the_others_are_checked() -> None:
    runtime = find_runtime("pytorch")
    preload = runtime.fork_preload(ProbeResult("cpu", True, "test"))
    assert preload is not None and "torch" in preload
    for kind in ("cuda", "neuron", "eia"):
        assert runtime.fork_preload(ProbeResult(kind, True, "test")) is None


def test_serve_starts_the_template_before_the_frontend_imports_itself(
    tree: Any, start: Any
) -> None:
    """``python -m eikit serve`` spawns the template first thing, and the frontend adopts
    that one rather than starting another (eikit.server.early_template)."""
    endpoint = start(tree, {"SAGEMAKER_CONTAINER_LOG_LEVEL": "10"})
    (template,) = template_pids(endpoint.server.process.pid)
    assert "template started with serve (pid %d)" % template in endpoint.log()
    assert endpoint.invoke(b"[[1.0, 2.0, 3.0, 4.0]]").status_code == 200


def test_a_server_that_fails_before_its_workers_leaves_no_template(
    tree: Any, start: Any
) -> None:
    """The template started early is killed and reaped when start-up fails first: no
    process is left waiting for an ``init`` that never comes, and no zombie."""
    endpoint = start(tree, {"EIKIT_FRAMEWORK": "no-such-runtime"}, ready=False)
    frontend = endpoint.server.process.pid
    _until(lambda: "start-up failed" in endpoint.log(), "the start-up to fail")
    _until(lambda: children(frontend) == [], "the early template to be reaped", 30)
    assert endpoint.server.process.poll() is None  # the frontend stays, to say why
