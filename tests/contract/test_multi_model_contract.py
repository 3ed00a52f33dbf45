"""Multi-model endpoints for every runtime: two models of the framework loaded side by side,
invoked by name (route and header), listed, described and unloaded, over real HTTP. The
routes' every status is in tests/integration/test_multi_model.py (PyTorch)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import requests

from tests.contract.lib_rule import (
    SKIPS_REQUIREMENTS_BESIDE_LIB,
    write_code_with_lib_and_requirements,
)
from tests.frameworks import expected

ROWS = [[1.0, 2.0, 3.0, 4.0]]


def test_two_models_load_serve_and_unload(framework, start, tmp_path: Path) -> None:
    endpoint = start(SimpleNamespace(base=tmp_path / "ml"), {"SAGEMAKER_MULTI_MODEL": "true"})
    url = endpoint.url
    paths = {}
    for name in ("first/1", "second.v2"):
        # SAGEMAKER_BASE_DIR/models: the models root, where SageMaker puts them
        path = tmp_path / "ml" / "models" / quote(name, safe="") / "model"
        path.mkdir(parents=True)
        framework.save_model(path)
        paths[name] = path
        loaded = requests.post(
            url + "/models", json={"model_name": name, "url": str(path)}, timeout=300
        )
        assert loaded.status_code == 200, loaded.text + endpoint.log()
    listed = requests.get(url + "/models", timeout=10).json()["models"]
    assert sorted(m["modelName"] for m in listed) == ["first/1", "second.v2"]
    body = framework.request(ROWS)
    for name in paths:
        by_route = endpoint.invoke(body, path="/models/%s/invoke" % quote(name, safe=""))
        assert by_route.status_code == 200, by_route.text
        assert framework.answer(by_route.json()) == expected(ROWS)
        by_header = endpoint.invoke(body, headers={"X-Amzn-SageMaker-Target-Model": name})
        assert framework.answer(by_header.json()) == expected(ROWS)
        described = requests.get(url + "/models/" + quote(name, safe=""), timeout=10).json()
        assert described["modelUrl"] == str(paths[name]) and described["memoryBytes"] > 0
    assert requests.delete(url + "/models/first%2F1", timeout=120).status_code == 200
    gone = endpoint.invoke(body, path="/models/first%2F1/invoke")
    assert gone.status_code == 404 and "first/1" in gone.json()["error"]
    second = endpoint.invoke(body, path="/models/second.v2/invoke")
    assert framework.answer(second.json()) == expected(ROWS)


def test_a_models_requirements_beside_lib_follow_the_frameworks_aws_rule(
    framework, start, tmp_path: Path
) -> None:
    endpoint = start(SimpleNamespace(base=tmp_path / "ml"), {"SAGEMAKER_MULTI_MODEL": "true"})
    path = tmp_path / "ml" / "models" / "vendored" / "model"
    path.mkdir(parents=True)
    framework.save_model(path)
    requirements = write_code_with_lib_and_requirements(path / "code", framework.name)
    loaded = requests.post(
        endpoint.url + "/models", json={"model_name": "vendored", "url": str(path)}, timeout=300
    )
    assert loaded.status_code == 200, loaded.text + endpoint.log()
    answer = endpoint.invoke(framework.request(ROWS), path="/models/vendored/invoke")
    assert framework.answer(answer.json()) == expected(ROWS)
    if SKIPS_REQUIREMENTS_BESIDE_LIB[framework.name]:
        assert "ignoring %s" % requirements in endpoint.log()
        assert "requirements installed" not in endpoint.log()
    else:
        assert "requirements installed" in endpoint.log(), endpoint.log()
