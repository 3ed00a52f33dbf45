"""Multi-model endpoints over real HTTP, with real TorchScript models: every route and
status of SageMaker's contract, per-model code, eviction and concurrency.

Every wait is on a condition (a file the test writes, a state the server reports), never
on a duration, so the tests hold on a busy machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from tests.frameworks import expected
from tests.integration.mme import BODY, ROWS, endpoints, gate_script, in_thread, wait_for
from tests.serving import make_wheel


@pytest.fixture
def mme(tmp_path: Path) -> Iterator[Any]:
    yield from endpoints(tmp_path)


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
    root = tmp_path / "models"  # SAGEMAKER_BASE_DIR/models: where SageMaker puts them
    assert models.load("m", root / "nowhere").status_code == 404
    empty = root / "empty"
    empty.mkdir(parents=True)
    assert models.load("m", empty).status_code == 404
    nothing = root / "nothing"
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
