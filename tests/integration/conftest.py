"""Real ``serve`` processes on free loopback ports, with TorchScript models built here."""

from __future__ import annotations

import contextlib
import textwrap
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
import requests

from eikit.local import ServerProcess

torch = pytest.importorskip("torch")


def save_linear_model(path: Path) -> None:
    """y = [x0, x1 + x2 + x3 + 0.5] for a 4-feature input: easy to check by hand."""
    layer = torch.nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
        layer.bias.copy_(torch.tensor([0.0, 0.5]))
    torch.jit.script(layer.eval()).save(str(path))


def expected(rows: List[List[float]]) -> List[List[float]]:
    return [[r[0], r[1] + r[2] + r[3] + 0.5] for r in rows]


class Endpoint:
    def __init__(self, server: ServerProcess, log_path: Path) -> None:
        self.server = server
        self.url = server.url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def invoke(
        self,
        body: bytes,
        content_type: Optional[str] = "application/json",
        accept: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
        timeout: float = 30,
    ) -> requests.Response:
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        if accept is not None:
            sent["Accept"] = accept
        return requests.post(self.url + "/invocations", data=body, headers=sent, timeout=timeout)

    def ping(self, timeout: float = 5) -> requests.Response:
        return requests.get(self.url + "/ping", timeout=timeout)

    def wait_failed(self, timeout: float = 60) -> requests.Response:
        """Poll /ping until it reports a failed load (503 with "failed"), then return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                ping = self.ping()
                if ping.status_code == 503 and "failed" in ping.text:
                    return ping
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "load never failed:\n" + self.log()
            time.sleep(0.05)


class ModelTree:
    """A SageMaker base dir: ``model/model.pt`` and optionally ``model/code/``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.model_dir = base / "model"
        self.model_dir.mkdir(parents=True)
        save_linear_model(self.model_dir / "model.pt")

    def script(self, source: str, name: str = "inference.py") -> Path:
        code = self.model_dir / "code"
        code.mkdir(exist_ok=True)
        path = code / name
        path.write_text(textwrap.dedent(source))
        return path


@contextlib.contextmanager
def served(base: Path, env: Dict[str, str]) -> Iterator[Tuple[ServerProcess, Path]]:
    """A ready server on a new model tree under ``base`` (for module-scoped fixtures that
    share one server); its log in ``base/server.log``; stopped afterwards."""
    tree = ModelTree(base / "ml")
    log_path = base / "server.log"
    server = ServerProcess(tree.base, env)
    server.start(stdout=log_path.open("wb"))
    try:
        status = server.wait_ready(120)
        assert status == 200, "server not ready (%s):\n%s" % (status, log_path.read_text())
        yield server, log_path
    finally:
        server.stop()


@pytest.fixture
def tree(tmp_path: Path) -> ModelTree:
    return ModelTree(tmp_path / "ml")


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """start(tree, env=..., ready=True) -> Endpoint; every server is stopped afterwards."""
    servers: List[ServerProcess] = []

    def _start(
        tree: ModelTree, env: Optional[Dict[str, str]] = None, ready: bool = True
    ) -> Endpoint:
        settings = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "EIKIT_WORKER_THREADS": "1"}
        settings.update(env or {})
        log_path = tmp_path / ("server-%d.log" % len(servers))
        server = ServerProcess(tree.base, settings)
        server.start(stdout=log_path.open("wb"))
        servers.append(server)
        endpoint = Endpoint(server, log_path)
        if ready:
            status = server.wait_ready(120)
            assert status == 200, "server not ready (%s):\n%s" % (status, endpoint.log())
        return endpoint

    yield _start
    for server in servers:
        server.stop()
