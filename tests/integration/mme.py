"""What the multi-model tests share: a multi-model endpoint, the model folders a test makes
for it (under the endpoint's models root, ``SAGEMAKER_BASE_DIR/models``), and waits on
conditions rather than durations."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import quote

import requests

from tests.frameworks import save_torch_linear
from tests.serving import starter

ROWS = [[1.0, 2.0, 3.0, 4.0]]
BODY = json.dumps(ROWS).encode()


class Models:
    """A multi-model endpoint and the model directories a test makes for it."""

    def __init__(self, base: Path, url: str, log: Any = None, pid: int = 0) -> None:
        self.base = base
        self.pid = pid  # the server's (frontend's) process
        self.url = url
        self.log = log  # () -> the server's log so far

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

    def load(
        self, name: str, path: Any, timeout: float = 180, headers: Optional[Dict[str, str]] = None
    ) -> requests.Response:
        body = {"model_name": name, "url": str(path)}
        return requests.post(self.url + "/models", json=body, headers=headers, timeout=timeout)

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


def endpoints(tmp_path: Path) -> Iterator[Any]:
    """The body of an ``mme`` fixture: start(env) -> Models on a fresh multi-model endpoint
    (no ``model/`` to read); every one is stopped afterwards."""
    servers = starter(tmp_path, {"SAGEMAKER_MULTI_MODEL": "true"})
    start = next(servers)

    def _start(env: Optional[Dict[str, str]] = None) -> Models:
        endpoint = start(SimpleNamespace(base=tmp_path), env)
        return Models(tmp_path, endpoint.url, endpoint.log, endpoint.server.process.pid)

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
