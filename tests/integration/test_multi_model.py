"""Multi-model endpoints over real HTTP, with real TorchScript models: every route and
status of SageMaker's contract, per-model code, eviction and concurrency.

Every wait is on a condition (a file the test writes, a state the server reports), never
on a duration, so the tests hold on a busy machine.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import quote

import pytest
import requests

from tests.frameworks import expected, save_torch_linear
from tests.serving import make_wheel, starter

ROWS = [[1.0, 2.0, 3.0, 4.0]]
BODY = json.dumps(ROWS).encode()


class Models:
    """A multi-model endpoint and the model directories a test makes for it."""

    def __init__(self, base: Path, url: str) -> None:
        self.base = base
        self.url = url

    def make(
        self, folder: str, script: Optional[str] = None, files: Optional[Dict[str, str]] = None
    ) -> Path:
        path = self.base / "models" / folder / "model"
        path.mkdir(parents=True)
        save_torch_linear(path)
        if script is not None:
            (path / "code").mkdir()
            (path / "code" / "inference.py").write_text(textwrap.dedent(script))
        for name, text in (files or {}).items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(textwrap.dedent(text))
        return path

    def load(self, name: str, path: Any, timeout: float = 180) -> requests.Response:
        body = {"model_name": name, "url": str(path)}
        return requests.post(self.url + "/models", json=body, timeout=timeout)

    def invoke(self, name: str, body: bytes = BODY, header: bool = False) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if header:
            headers["X-Amzn-SageMaker-Target-Model"] = name
            return requests.post(self.url + "/invocations", data=body, headers=headers, timeout=60)
        path = "/models/%s/invoke" % quote(name, safe="")
        return requests.post(self.url + path, data=body, headers=headers, timeout=60)

    def get(self, name: str) -> requests.Response:
        return requests.get(self.url + "/models/" + quote(name, safe=""), timeout=10)

    def delete(self, name: str) -> requests.Response:
        return requests.delete(self.url + "/models/" + quote(name, safe=""), timeout=120)

    def names(self) -> List[str]:
        return [
            m["modelName"] for m in requests.get(self.url + "/models", timeout=10).json()["models"]
        ]


@pytest.fixture
def mme(tmp_path: Path) -> Iterator[Any]:
    """start(env) -> Models on a fresh multi-model endpoint (no ``model/`` to read)."""
    servers = starter(tmp_path, {"SAGEMAKER_MULTI_MODEL": "true"})
    start = next(servers)

    def _start(env: Optional[Dict[str, str]] = None) -> Models:
        endpoint = start(SimpleNamespace(base=tmp_path), env)
        return Models(tmp_path, endpoint.url)

    yield _start
    next(servers, None)  # stops them


def wait_for(check: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def gate_script(gate: Path, where: str) -> str:
    """A script whose ``model_fn`` (where="load") or ``predict_fn`` (where="predict") waits
    for ``gate`` to exist, announcing it is waiting with ``gate``.waiting."""
    wait = textwrap.dedent(
        """
        def _wait():
            open(%r, "w").close()
            while not os.path.exists(%r):
                time.sleep(0.02)
        """
        % (str(gate) + ".waiting", str(gate))
    )
    if where == "load":
        hook = "def model_fn(model_dir):\n    _wait()\n"
        hook += "    return torch.jit.load(os.path.join(model_dir, 'model.pt'))\n"
    else:
        hook = "def predict_fn(data, model):\n    _wait()\n    return model(data)\n"
    return "import os, time\nimport torch\n" + wait + hook


def in_thread(call: Any) -> Dict[str, Any]:
    """Run ``call`` in a thread; the dict gets "answer" when it returns."""
    result: Dict[str, Any] = {}

    def run() -> None:
        result["answer"] = call()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    result["thread"] = thread
    return result


def test_routes_and_statuses(mme: Any) -> None:
    models = mme()
    assert requests.get(models.url + "/ping", timeout=5).status_code == 200  # no model yet
    assert models.names() == []
    path = models.make("a")
    name = "customer/7.v2 ünïcode"  # opaque: slashes, dots, spaces, non-ASCII
    loaded = models.load(name, path)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["modelName"] == name
    again = models.load(name, path)
    assert again.status_code == 409 and again.json()["code"] == "model_exists"

    by_path = models.invoke(name)
    assert by_path.status_code == 200, by_path.text
    assert by_path.json() == expected(ROWS)
    by_header = models.invoke(name, header=True)
    assert by_header.status_code == 200 and by_header.json() == expected(ROWS)

    described = models.get(name).json()
    assert described["modelName"] == name and described["modelUrl"] == str(path)
    assert described["status"] == "ready" and described["memoryBytes"] > 0

    missing = models.invoke("nobody")
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]
    assert models.invoke("nobody", header=True).status_code == 404
    no_target = requests.post(models.url + "/invocations", data=BODY, timeout=10)
    assert no_target.status_code == 400
    assert "X-Amzn-SageMaker-Target-Model" in no_target.json()["error"]
    assert models.get("nobody").status_code == 404
    assert models.delete("nobody").status_code == 404
    not_allowed = requests.put(models.url + "/models/x", timeout=5)
    assert not_allowed.status_code == 405 and "DELETE" in not_allowed.headers["allow"]

    assert models.delete(name).status_code == 200
    gone = models.invoke(name)
    assert gone.status_code == 404 and name in gone.json()["error"]
    assert models.delete(name).status_code == 404
    assert models.names() == []


def test_bad_load_requests(mme: Any, tmp_path: Path) -> None:
    models = mme()
    for body in (
        b"{not json",
        b"[1, 2]",
        b'{"url": "/x"}',
        b'{"model_name": "m"}',
        b'{"model_name": 3, "url": "/x"}',
        b'{"model_name": "m", "url": ["/x"]}',
    ):
        answer = requests.post(models.url + "/models", data=body, timeout=10)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["code"] == "bad_request"
    assert models.load("m", tmp_path / "nowhere").status_code == 404
    empty = tmp_path / "empty"
    empty.mkdir()
    assert models.load("m", empty).status_code == 404
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    (nothing / "README.txt").write_text("no model here")
    refused = models.load("m", nothing)
    assert refused.status_code == 404, refused.text
    assert "no model file" in refused.json()["error"]
    broken = models.make(
        "broken", "def model_fn(model_dir):\n    raise ValueError('weights corrupt')\n"
    )
    failed = models.load("m", broken)
    assert failed.status_code == 500, failed.text
    assert "weights corrupt" in failed.json()["error"]
    # Nothing of the failed loads stays behind: the name loads now.
    assert models.names() == []
    assert models.load("m", models.make("good")).status_code == 200
    assert models.invoke("m").json() == expected(ROWS)


def test_listing_is_paginated(mme: Any) -> None:
    models = mme()
    path = models.make("shared")
    for name in ("m1", "m2", "m3"):
        assert models.load(name, path).status_code == 200
    first = requests.get(models.url + "/models?max_results=2", timeout=10).json()
    assert [m["modelName"] for m in first["models"]] == ["m1", "m2"]
    token = first["nextPageToken"]
    rest = requests.get(
        models.url + "/models", params={"max_results": 2, "next_page_token": token}, timeout=10
    ).json()
    assert [m["modelName"] for m in rest["models"]] == ["m3"]
    assert "nextPageToken" not in rest
    assert requests.get(models.url + "/models?max_results=0", timeout=10).status_code == 400
    assert requests.get(models.url + "/models?max_results=x", timeout=10).status_code == 400


def test_each_model_has_its_own_code_lib_and_requirements(mme: Any) -> None:
    models = mme()
    script = """
        import helper
        import eikit_mme_probe
        def output_fn(prediction, accept):
            return "%s %s" % (helper.WHO, eikit_mme_probe.ANSWER)
    """
    paths = {}
    for who, answer in (("first", 1), ("second", 2)):
        path = models.make(who, script, {"code/lib/helper.py": "WHO = %r\n" % who})
        wheel = make_wheel(
            path / "code", "eikit_mme_probe", "%d.0" % answer, "ANSWER = %d\n" % answer
        )
        (path / "code" / "requirements.txt").write_text("./%s\n" % wheel.name)
        paths[who] = path
    for who, path in paths.items():
        assert models.load(who, path).status_code == 200
    assert models.invoke("first").text == "first 1"
    assert models.invoke("second").text == "second 2"


def test_least_recently_used_idle_model_is_evicted(mme: Any) -> None:
    models = mme({"EIKIT_MAX_MODELS": "2"})
    path = models.make("shared")
    assert models.load("a", path).status_code == 200
    assert models.load("b", path).status_code == 200
    assert models.invoke("a").status_code == 200  # b is now the least recently used
    assert models.load("c", path).status_code == 200
    assert sorted(models.names()) == ["a", "c"]
    assert models.invoke("b").status_code == 404
    metrics = requests.get(models.url + "/metrics", timeout=10).text
    assert "eikit_models_evicted 1.0" in metrics and "eikit_models_loaded 2.0" in metrics


def test_507_when_only_busy_models_could_make_room(mme: Any, tmp_path: Path) -> None:
    models = mme({"EIKIT_MAX_MODELS": "1"})
    gate = tmp_path / "gate"
    assert models.load("busy", models.make("busy", gate_script(gate, "predict"))).status_code == 200
    running = in_thread(lambda: models.invoke("busy"))
    wait_for(lambda: Path(str(gate) + ".waiting").exists(), "the request to start")
    refused = models.load("other", models.make("other"))
    assert refused.status_code == 507, refused.text
    assert refused.json()["code"] == "insufficient_memory"
    gate.touch()
    running["thread"].join(60)
    assert running["answer"].status_code == 200
    assert models.load("other", models.make("other2")).status_code == 200  # busy is idle now
    assert models.names() == ["other"]


def test_memory_is_measured_after_the_load(mme: Any) -> None:
    # 1 MiB cannot hold any worker: the files are tiny, so only measuring finds that out.
    models = mme({"EIKIT_MODELS_MEMORY_MB": "1"})
    refused = models.load("a", models.make("a"))
    assert refused.status_code == 507, refused.text
    assert "MiB" in refused.json()["error"]
    assert models.names() == []


def test_invoke_during_load_waits_for_it(mme: Any, tmp_path: Path) -> None:
    models = mme()
    gate = tmp_path / "gate"
    loading = in_thread(lambda: models.load("slow", models.make("slow", gate_script(gate, "load"))))
    wait_for(lambda: Path(str(gate) + ".waiting").exists(), "model_fn to start")
    assert models.get("slow").json()["status"] == "loading"
    invoking = in_thread(lambda: models.invoke("slow"))
    # Loads do not hold up other models: one loads and serves meanwhile.
    assert models.load("quick", models.make("quick")).status_code == 200
    assert models.invoke("quick").json() == expected(ROWS)
    assert invoking["thread"].is_alive()  # still waiting for its model
    gate.touch()
    loading["thread"].join(120)
    invoking["thread"].join(60)
    assert loading["answer"].status_code == 200
    assert invoking["answer"].status_code == 200 and invoking["answer"].json() == expected(ROWS)


def test_invoke_during_unload_is_refused_and_running_ones_finish(mme: Any, tmp_path: Path) -> None:
    models = mme()
    gate = tmp_path / "gate"
    assert models.load("m", models.make("m", gate_script(gate, "predict"))).status_code == 200
    running = in_thread(lambda: models.invoke("m"))
    wait_for(lambda: Path(str(gate) + ".waiting").exists(), "the request to start")
    unloading = in_thread(lambda: models.delete("m"))
    wait_for(lambda: models.get("m").json().get("status") == "unloading", "the unload to begin")
    refused = models.invoke("m")
    assert refused.status_code == 404 and "being unloaded" in refused.json()["error"]
    gate.touch()
    running["thread"].join(60)
    unloading["thread"].join(120)
    assert running["answer"].status_code == 200
    assert unloading["answer"].status_code == 200
    assert models.get("m").status_code == 404
