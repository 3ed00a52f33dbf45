"""Real ``serve`` processes on free loopback ports, for any framework: an ``Endpoint`` to
talk to one, a ``ModelTree`` to lay out its base dir, and the ``start`` fixture's body."""

from __future__ import annotations

import textwrap
import time
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import requests

from eikit.local import ServerProcess


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
        path: str = "/invocations",
    ) -> requests.Response:
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        if accept is not None:
            sent["Accept"] = accept
        return requests.post(self.url + path, data=body, headers=sent, timeout=timeout)

    def ping(self, timeout: float = 5) -> requests.Response:
        return requests.get(self.url + "/ping", timeout=timeout)

    def wait_log(self, ready: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        """The log once ``ready(log)`` holds: lines written after a reply was sent (the
        access log, a worker's error line) may land after the client read the reply."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if ready(log):
                return log
            assert time.monotonic() < deadline, "timed out waiting for %s:\n%s" % (what, log)
            time.sleep(0.05)

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
    """A SageMaker base dir: ``model/`` filled by ``save_model``, optionally ``model/code/``."""

    def __init__(self, base: Path, save_model: Callable[[Path], None]) -> None:
        self.base = base
        self.model_dir = base / "model"
        self.model_dir.mkdir(parents=True)
        save_model(self.model_dir)

    def script(self, source: str, name: str = "inference.py") -> Path:
        code = self.model_dir / "code"
        code.mkdir(exist_ok=True)
        path = code / name
        path.write_text(textwrap.dedent(source))
        return path


StartFn = Callable[..., Endpoint]


def starter(tmp_path: Path, defaults: Optional[Dict[str, str]] = None) -> Iterator[StartFn]:
    """The ``start`` fixture: start(tree, env=..., ready=True) -> Endpoint; every server is
    stopped afterwards. One worker with one thread unless ``env`` says otherwise (a value
    of None leaves a setting unset)."""
    servers: List[ServerProcess] = []
    base_env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "EIKIT_WORKER_THREADS": "1"}
    base_env.update(defaults or {})

    def _start(
        tree: ModelTree, env: Optional[Dict[str, Optional[str]]] = None, ready: bool = True
    ) -> Endpoint:
        settings = dict(base_env)
        settings.update(env or {})
        settings = {key: value for key, value in settings.items() if value is not None}
        log_path = tmp_path / ("server-%d.log" % len(servers))
        server = ServerProcess(tree.base, settings)
        server.start(stdout=log_path.open("wb"))
        servers.append(server)
        endpoint = Endpoint(server, log_path)
        if ready:
            status = server.wait_ready(180)
            assert status == 200, "server not ready (%s):\n%s" % (status, endpoint.log())
        return endpoint

    yield _start
    for server in servers:
        server.stop()


def make_wheel(
    directory: Path, name: str, version: str = "1.0", source: str = "ANSWER = 41 + 1\n"
) -> Path:
    """A minimal pure-Python wheel of module ``name``, built by hand: nothing is downloaded."""
    dist = "%s-%s" % (name, version)
    path = directory / ("%s-py3-none-any.whl" % dist)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("%s.py" % name, source)
        wheel.writestr(
            "%s.dist-info/METADATA" % dist,
            "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
        )
        wheel.writestr(
            "%s.dist-info/WHEEL" % dist,
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr("%s.dist-info/RECORD" % dist, "")
    return path
