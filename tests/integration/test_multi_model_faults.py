"""Multi-model endpoints that never lie: what SageMaker sees when models fail, run out of
memory, or come and go, over real HTTP with real workers (issue 14).

Each test names the defect it catches. Faults are made by the tests' own scripts, driven
by files the test controls (a flag that makes loads fail, a gate a load waits on), never
by durations.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from eikit.local import ServerProcess
from tests.frameworks import expected
from tests.integration.mme import ROWS, Models, endpoints, gate_script, in_thread, wait_for

LOAD = "return torch.jit.load(os.path.join(model_dir, 'model.pt'))"


@pytest.fixture
def mme(tmp_path: Path) -> Iterator[Any]:
    yield from endpoints(tmp_path)


def pid_script(pid_file: Path, before_load: str = "") -> str:
    """A script whose ``model_fn`` runs ``before_load``, then writes its pid and loads."""
    body = textwrap.indent(textwrap.dedent(before_load), "    ")
    return "import os, signal, torch\n\ndef model_fn(model_dir):\n%s\n" % body + (
        "    open(%r, 'w').write(str(os.getpid()))\n    %s\n" % (str(pid_file), LOAD)
    )


def test_a_model_whose_workers_cannot_load_is_dropped_and_loads_again(
    mme: Any, tmp_path: Path
) -> None:
    """Defect: after its worker died while model_fn failed, the model stayed "ready" with 0
    workers forever: invokes 503, a new load 409."""
    models = mme({"EIKIT_MAX_RELOAD_FAILURES": "1", "EIKIT_MODEL_RESTARTS": "1"})
    flag, pid_file = tmp_path / "loads-fail", tmp_path / "pid"
    fail = "if os.path.exists(%r):\n    raise RuntimeError('weights unavailable')" % str(flag)
    path = models.make("flaky", pid_script(pid_file, fail))
    assert models.load("flaky", path).status_code == 200
    flag.touch()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    # Its replacement fails (EIKIT_MAX_RELOAD_FAILURES=1), so does its one restart: dropped.
    wait_for(lambda: models.get("flaky").status_code == 404, "the model to be dropped", 120)
    gone = models.invoke("flaky")
    assert gone.status_code == 404, gone.text  # SageMaker loads it again on a 404
    assert models.names() == []
    assert requests.get(models.url + "/ping", timeout=5).status_code == 200
    still_failing = models.load("flaky", path)
    assert still_failing.status_code == 500 and "weights unavailable" in still_failing.text
    flag.unlink()
    assert models.load("flaky", path).status_code == 200
    assert models.invoke("flaky").json() == expected(ROWS)
    log = models.log()
    assert "'flaky': ready -> loading (restart 1 of 1" in log
    assert "'flaky': loading -> failed (restart failed" in log
    assert "'flaky': failed -> gone" in log


def test_a_restart_brings_the_model_back_and_it_is_not_listed_meanwhile(
    mme: Any, tmp_path: Path
) -> None:
    """The worker's replacement and the first restart fail (loads 2 and 3); the second
    restart (load 4, held at a gate) brings the model back in place."""
    models = mme({"EIKIT_MAX_RELOAD_FAILURES": "1", "EIKIT_MODEL_RESTARTS": "2"})
    attempts, gate, pid_file = tmp_path / "attempts", tmp_path / "gate", tmp_path / "pid"
    attempts.mkdir()
    before = """
        n = len(os.listdir(%r)) + 1
        open(os.path.join(%r, str(n)), "w").close()
        if n in (2, 3):
            raise RuntimeError("load %%d fails" %% n)
        if n == 4:
            while not os.path.exists(%r):
                __import__("time").sleep(0.02)
    """ % (str(attempts), str(attempts), str(gate))
    path = models.make("m", pid_script(pid_file, before))
    assert models.load("m", path).status_code == 200
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    wait_for(lambda: (attempts / "4").exists(), "the second restart")
    described = models.get("m").json()
    assert described["status"] == "loading" and described["restarts"] == 2, described
    assert models.names() == []  # never listed while it cannot serve
    waiting = in_thread(lambda: models.invoke("m"))  # waits for the restart
    gate.touch()
    waiting["thread"].join(120)
    assert waiting["answer"].status_code == 200, waiting["answer"].text
    assert models.names() == ["m"]
    assert models.get("m").json()["status"] == "ready"


@pytest.mark.parametrize(
    "raise_it",
    [
        "raise MemoryError()",
        "raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')",
        "raise RuntimeError('CUDA error: out of memory')",
    ],
    ids=["MemoryError", "torch.cuda.OutOfMemoryError", "RuntimeError"],
)
def test_out_of_memory_in_model_fn_is_507(mme: Any, raise_it: str) -> None:
    """Defect: a MemoryError in model_fn answered 500; SageMaker frees memory on a 507."""
    models = mme()
    script = "import torch\n\ndef model_fn(model_dir):\n    %s\n" % raise_it
    answer = models.load("big", models.make("big", script))
    assert answer.status_code == 507, answer.text
    assert answer.json()["code"] == "insufficient_memory"
    assert models.get("big").status_code == 404  # nothing stays behind


def test_a_worker_killed_by_the_oom_killer_during_load_is_507(mme: Any, tmp_path: Path) -> None:
    """The kernel's evidence is the cgroup's oom_kill count (EIKIT_CGROUP_ROOT points at a
    stand-in of the cgroup folder, which the script updates as the kernel would before it
    SIGKILLs itself); a SIGKILL with no OOM kill counted stays a 500."""
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    events = cgroup / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    models = mme({"EIKIT_CGROUP_ROOT": str(cgroup)})
    oom = """
        with open(%r, "w") as f:
            f.write("low 0\\nhigh 0\\nmax 9\\noom 2\\noom_kill 1\\n")
        os.kill(os.getpid(), signal.SIGKILL)
    """ % str(events)
    killed = models.load("oom", models.make("oom", pid_script(tmp_path / "pid", oom)))
    assert killed.status_code == 507, killed.text
    assert "OOM killer" in killed.json()["error"]
    plain = "os.kill(os.getpid(), signal.SIGKILL)"
    other = models.load("killed", models.make("killed", pid_script(tmp_path / "pid2", plain)))
    assert other.status_code == 500, other.text
    assert "no OOM kill" in other.json()["error"]


def test_a_hostile_query_string_is_400(mme: Any) -> None:
    """Defect: '²'.isdigit() is true, int('²') raises: GET /models answered 500."""
    models = mme()
    for query in ("max_results=%C2%B2", "max_results=" + "9" * 5000, "max_results=%00"):
        answer = requests.get(models.url + "/models?" + query, timeout=10)
        assert answer.status_code == 400, (query[:40], answer.text)
        assert answer.json()["code"] == "bad_request"


def test_each_models_workers_get_the_cores_divided_by_its_own_workers(tmp_path: Path) -> None:
    """Defect: threads were divided by the single-model worker count (one per core), so
    each model's one worker ran one thread on a 2-core host."""
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("needs 2 cores to tell one thread per worker from the cores")
    env = {"SAGEMAKER_MULTI_MODEL": "true", "EIKIT_WORKER_THREADS": ""}
    env = {k: v for k, v in env.items() if v}  # the user set no thread count
    server = ServerProcess(tmp_path, env)
    server.env.pop("EIKIT_WORKER_THREADS", None)
    server.env.pop("SAGEMAKER_MODEL_SERVER_WORKERS", None)
    log = tmp_path / "server.log"
    server.start(stdout=log.open("wb"))
    try:
        assert server.wait_ready(120) == 200, log.read_text()
        models = Models(tmp_path, server.url)
        script = """
            import torch
            def predict_fn(data, model):
                return torch.tensor([[float(torch.get_num_threads())]])
        """
        assert models.load("t", models.make("t", script)).status_code == 200
        assert models.invoke("t").json() == [[float(cores)]]
    finally:
        server.stop()


def test_a_finished_load_counts_as_a_use(mme: Any, tmp_path: Path) -> None:
    """Defect: a model's use time was set when its load began, so a model that had just
    finished loading was evicted as the least recently used."""
    models = mme({"EIKIT_MAX_MODELS": "2"})
    gate = tmp_path / "gate"
    assert models.load("a", models.make("a")).status_code == 200
    loading = in_thread(lambda: models.load("b", models.make("b", gate_script(gate, "load"))))
    wait_for(lambda: Path(str(gate) + ".waiting").exists(), "b's model_fn to start")
    assert models.invoke("a").status_code == 200  # a is used after b began loading...
    gate.touch()
    loading["thread"].join(120)
    assert loading["answer"].status_code == 200  # ...and before b finished
    assert models.load("c", models.make("c")).status_code == 200
    assert sorted(models.names()) == ["b", "c"]


def test_memory_is_measured_again_after_the_load(mme: Any) -> None:
    """Defect: memory was measured once, right after the load, so what a model allocates
    on its first requests never counted."""
    models = mme({"EIKIT_MODELS_MEASURE_INTERVAL": "0.2"})
    script = """
        HELD = []
        def predict_fn(data, model):
            if not HELD:
                HELD.append(b"\\x01" * (200 * 1024 * 1024))  # written: resident
            return model(data)
    """
    assert models.load("grows", models.make("grows", script)).status_code == 200
    before = models.get("grows").json()["memoryBytes"]
    assert models.invoke("grows").status_code == 200
    wait_for(
        lambda: models.get("grows").json()["memoryBytes"] > before + 150 * 1024 * 1024,
        "the growth to be measured",
        60,
    )


def test_a_url_outside_the_models_root_is_400(mme: Any, tmp_path: Path) -> None:
    """Defect: any path was taken, and the first load walked it on the event loop."""
    models = mme()
    for url in ("/", str(tmp_path), str(tmp_path / "models" / ".." / "elsewhere"), "a\x00b"):
        answer = models.load("m", url)
        assert answer.status_code == 400, (url, answer.text)
        assert "models folder" in answer.json()["error"] or "\x00" in url
    assert models.load("m", models.make("m")).status_code == 200


def test_pool_log_lines_do_not_carry_the_load_requests_id(mme: Any, tmp_path: Path) -> None:
    """Defect: the pool's later lines (a worker replaced) said request=<the load's id>."""
    models = mme()
    pid_file = tmp_path / "pid"
    path = models.make("m", pid_script(pid_file))
    loaded = models.load("m", path, headers={"X-Request-Id": "load-request-7"})
    assert loaded.status_code == 200
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    wait_for(lambda: "replaced and ready" in models.log(), "the worker to be replaced")
    lines = [line for line in models.log().splitlines() if re.search("exited|replaced", line)]
    assert lines and not any("load-request-7" in line for line in lines), lines
    ready = [line for line in models.log().splitlines() if "loading -> ready" in line]
    assert ready and "request=load-request-7" in ready[0]  # the load's own line keeps it


def test_workers_of_every_model_fit_the_open_files_limit(tmp_path: Path) -> None:
    """Defect: the descriptors kept for workers counted one model's; with 156 open files
    and 100 connections, there is room for two workers: a third model evicts one."""
    limit = 100 + 32 + 16 + 2 * 4  # connections, FD_RESERVE, REJECT_LINGER, 2 workers

    class Limited(ServerProcess):
        def start(self, stdout: Any = None) -> ServerProcess:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eikit", "serve"],
                env=self.env,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
            )
            return self

    env = {
        "SAGEMAKER_MULTI_MODEL": "true",
        "EIKIT_MAX_CONNECTIONS": "100",
        "EIKIT_WORKER_THREADS": "1",
    }
    server = Limited(tmp_path, env)
    log = tmp_path / "server.log"
    server.start(stdout=log.open("wb"))
    try:
        assert server.wait_ready(120) == 200, log.read_text()
        models = Models(tmp_path, server.url)
        for name in ("a", "b", "c"):
            answer = models.load(name, models.make(name))
            assert answer.status_code == 200, answer.text + log.read_text()[-3000:]
        assert sorted(models.names()) == ["b", "c"], log.read_text()[-3000:]
        assert "open-files limit" in log.read_text()
        assert models.invoke("c").json() == expected(ROWS)
    finally:
        server.stop()
