"""A pytest plugin: test your own model and inference script against a real server.

Installed with eikit (entry point ``pytest11: eikit``), it gives two fixture factories,
``eikit_endpoint`` (stopped after each test) and ``eikit_session_endpoint`` (stopped at the
end of the session)::

    def test_predicts(eikit_endpoint):
        endpoint = eikit_endpoint("tests/model", code_dir="src/code")
        response = endpoint.invoke({"inputs": [[1.0, 2.0]]}, accept="application/json")
        assert response.status == 200, response.text
        assert response.json() == {"outputs": [[3.0]]}

By default the server is a ``python -m eikit serve`` process on a free loopback port, the
model laid out as SageMaker would (links, no copies). ``image="..."``, or
``pytest --eikit-image IMAGE`` for every endpoint, runs a container instead, as SageMaker
would (see ``eikit.images.container``).

Multi-model endpoints: ``multi_model=True`` makes the first argument a folder of models
(folders or ``model.tar.gz`` files, named by their file names), loads each once the server
is up, and ``invoke(..., target_model=NAME)`` calls one, as SageMaker does::

    endpoint = eikit_endpoint("tests/models", multi_model=True)
    assert endpoint.invoke([[1.0, 2.0]], target_model="customer-7").status == 200
    endpoint.unload_model("customer-7")

Outside pytest, ``start_endpoint(...)`` does the same and returns an ``Endpoint``.

Servers end with the process that started them, even when it is killed: a ``serve`` process
gets SIGTERM from the kernel (Linux), a container is removed by eikit's reaper
(``eikit.images.leftovers``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

import pytest

from eikit.ping import exited, wait_ready

if TYPE_CHECKING:
    from eikit.images.container import ContainerEndpoint
    from eikit.local import ServerProcess

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
STARTUP_TIMEOUT_S = 120.0
IMAGE_OPTION = "--eikit-image"
IMAGE_ENV = "EIKIT_TEST_IMAGE"
NPY = "application/x-npy"


class EndpointError(RuntimeError):
    """The server did not start or did not become ready; the message holds its log tail."""


@dataclass
class Response:
    status: int
    headers: Dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.header("content-type") or ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        for key, value in self.headers.items():
            if key.lower() == name:
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Endpoint:
    """A running server: ``url``, ``ping()``, ``invoke()``, ``logs()``, ``stop()``."""

    url: str
    mode: str
    _stop: Callable[[], Optional[int]] = field(repr=False)
    _logs: Callable[[], str] = field(repr=False)
    process: Optional[ServerProcess] = field(default=None, repr=False)
    container: Optional[ContainerEndpoint] = field(default=None, repr=False)
    exit_code: Optional[int] = None
    _stopped: bool = field(default=False, repr=False)
    # multi-model: each model of the folder, as the server sees its location
    model_urls: Dict[str, str] = field(default_factory=dict, repr=False)

    def ping(self, timeout: float = 5.0) -> int:
        """The status of GET /ping (0 when nothing answers)."""
        try:
            return self.request("GET", "/ping", timeout=timeout).status
        except OSError:
            return 0

    def invoke(
        self,
        body: Any,
        content_type: Optional[str] = None,
        accept: Optional[str] = None,
        *,
        headers: Optional[Mapping[str, str]] = None,
        path: str = "/invocations",
        timeout: float = 70.0,
        target_model: Optional[str] = None,
    ) -> Response:
        """POST ``body`` to /invocations (``target_model``: to that model of a multi-model
        endpoint, by its route and the ``X-Amzn-SageMaker-Target-Model`` header).

        ``bytes`` and ``str`` are sent as they are; a numpy array as NPY; anything else as
        JSON. ``content_type`` defaults to what the body was encoded as.
        """
        data, guessed = encode_body(body, content_type)
        sent = {"Content-Type": content_type or guessed}
        if target_model is not None:
            from eikit.local_models import invoke_path

            path = invoke_path(target_model)
            sent["X-Amzn-SageMaker-Target-Model"] = target_model
        if accept:
            sent["Accept"] = accept
        sent.update(headers or {})
        return self.request("POST", path, data, sent, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: float = 70.0,
    ) -> Response:
        """Any request; HTTP error statuses are returned, not raised."""
        request = urllib.request.Request(
            self.url + path, data=body, headers=dict(headers or {}), method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return Response(reply.status, dict(reply.headers), reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def load_model(self, name: str, url: Optional[str] = None) -> Response:
        """Multi-model: load model ``name`` (of the folder, or from ``url``)."""
        location = url or self.model_urls.get(name)
        if location is None:
            raise EndpointError("no model %r in the folder and no url given" % name)
        body = json.dumps({"model_name": name, "url": location}).encode()
        headers = {"Content-Type": "application/json"}
        return self.request("POST", "/models", body, headers, timeout=600)

    def unload_model(self, name: str) -> Response:
        from eikit.local_models import model_path

        return self.request("DELETE", model_path(name), timeout=600)

    def models(self) -> List[str]:
        """Multi-model: the names of the loaded models."""
        from eikit.local_models import ModelsClient

        return ModelsClient(self.url).names()

    def logs(self) -> str:
        """The server's log so far (kept after it stops)."""
        return self._logs()

    def stop(self) -> Optional[int]:
        """SIGTERM, then kill after a grace period; the exit code. Safe to call twice."""
        if not self._stopped:
            self._stopped = True
            self.exit_code = self._stop()
        return self.exit_code


def encode_body(body: Any, content_type: Optional[str] = None) -> Tuple[bytes, str]:
    """``body`` as bytes, and the content type it was encoded as."""
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain"
    if hasattr(body, "dtype") and hasattr(body, "shape") and content_type in (None, NPY):
        import io

        import numpy

        buffer = io.BytesIO()
        numpy.save(buffer, numpy.asarray(body), allow_pickle=False)
        return buffer.getvalue(), NPY
    return json.dumps(body).encode("utf-8"), "application/json"


def start_endpoint(
    model_dir: PathLike,
    code_dir: Optional[PathLike] = None,
    image: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    *,
    startup_timeout: float = STARTUP_TIMEOUT_S,
    wait: bool = True,
    multi_model: bool = False,
) -> Endpoint:
    """Start a server for ``model_dir`` (and ``code_dir``): a process, or ``image``'s container.

    With ``wait`` (the default) it returns once /ping answers 200 and raises
    ``EndpointError`` (with the log tail) if the server exits or time runs out first.
    ``multi_model``: ``model_dir`` is a folder of models, each loaded once /ping answers
    (``EndpointError`` if one does not load).
    """
    if multi_model:
        if code_dir is not None:
            raise EndpointError("code_dir is for one model: each model brings its own code/")
        env = dict(env or {}, SAGEMAKER_MULTI_MODEL="true")
    if image:
        endpoint = _start_container(
            image, model_dir, code_dir, env, startup_timeout, wait, multi_model
        )
    else:
        endpoint = _start_process(model_dir, code_dir, env, startup_timeout, wait, multi_model)
    if multi_model and wait:
        _load_models(endpoint)
    return endpoint


def _load_models(endpoint: Endpoint) -> None:
    from eikit.local_models import ModelsClient, load_all

    failed = load_all(ModelsClient(endpoint.url), endpoint.model_urls, logger.info)
    if failed:
        endpoint.stop()
        problems = "; ".join("%s: %s" % item for item in sorted(failed.items()))
        raise EndpointError(
            "models did not load: %s\n--- server log ---\n%s" % (problems, _tail(endpoint.logs()))
        )


def _start_process(
    model_dir: PathLike,
    code_dir: Optional[PathLike],
    env: Optional[Mapping[str, str]],
    startup_timeout: float,
    wait: bool,
    multi_model: bool = False,
) -> Endpoint:
    from eikit.local import ServerProcess, layout_model_tree
    from eikit.local_models import collect_models, link_models

    work = Path(tempfile.mkdtemp(prefix="eikit-endpoint-"))
    log_path = work / "server.log"
    log_file: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
    server: Optional[ServerProcess] = None
    kept: List[str] = []  # the log, once the folder is gone

    def logs() -> str:
        if kept:
            return kept[0]
        log_file.flush()
        return log_path.read_bytes().decode("utf-8", "replace")

    def stop() -> Optional[int]:
        code = server.stop() if server is not None else None
        text = logs()
        log_file.close()
        kept.append(text)
        if os.environ.get("EIKIT_KEEP_ENDPOINT_DIRS") is None:
            shutil.rmtree(str(work), ignore_errors=True)
        return code

    urls: Dict[str, str] = {}
    try:
        if multi_model:
            base = work / "opt-ml"
            base.mkdir()
            urls = link_models(collect_models(Path(model_dir), work), base / "models")
        else:
            base = layout_model_tree(
                Path(model_dir), Path(code_dir) if code_dir is not None else None, work / "opt-ml"
            )
        server = ServerProcess(base, env=dict(env or {}))
        server.start(stdout=log_file)
    except BaseException:
        stop()
        raise
    endpoint = Endpoint(server.url, "process", stop, logs, process=server, model_urls=urls)
    if wait:
        try:
            problem = _wait_process(server, startup_timeout)
        except BaseException:  # Ctrl-C while it starts: the factory does not hold it yet
            endpoint.stop()
            raise
        if problem:
            endpoint.stop()
            raise EndpointError(
                "eikit serve %s\n--- server log ---\n%s" % (problem, _tail(endpoint.logs()))
            )
    return endpoint


def _wait_process(server: ServerProcess, timeout: float) -> Optional[str]:
    """Poll /ping until 200 (None), or say why it never will (exit, failed load, time)."""
    ready = wait_ready(server.url, time.monotonic() + timeout, exited(server.process))
    if ready.status == 200:
        return None
    if ready.timed_out:
        return "not ready after %.0f s (last /ping: %s)" % (timeout, ready.status or "no answer")
    return ready.why_not


def _start_container(
    image: str,
    model_dir: PathLike,
    code_dir: Optional[PathLike],
    env: Optional[Mapping[str, str]],
    startup_timeout: float,
    wait: bool,
    multi_model: bool = False,
) -> Endpoint:
    from eikit.images.container import ContainerEndpoint, ContainerError
    from eikit.local import free_port
    from eikit.local_models import collect_models, container_mounts

    mounts: List[Dict[str, Any]] = []
    urls: Dict[str, str] = {}
    scratch = Path(tempfile.mkdtemp(prefix="eikit-models-"))  # archives extracted here
    if multi_model:
        mounts, urls = container_mounts(collect_models(Path(model_dir), scratch))
    container = ContainerEndpoint(
        image,
        None if multi_model else model_dir,
        code_dir,
        env=env,
        port=free_port("127.0.0.1"),
        startup_timeout=startup_timeout,
        log_sink=lambda line: logger.debug("[container] %s", line),
        mounts=mounts,
    )
    try:
        container.start()
    except ContainerError as exc:
        raise EndpointError(str(exc)) from None
    except BaseException:
        container.stop()
        raise

    def stop() -> Optional[int]:
        code = container.stop()
        shutil.rmtree(str(scratch), ignore_errors=True)
        return code

    endpoint = Endpoint(container.url, "container", stop, container.logs, model_urls=urls)
    endpoint.container = container
    if wait:
        try:
            container.wait_ready()
        except ContainerError as exc:
            endpoint.stop()
            raise EndpointError(str(exc)) from None
        except BaseException:  # Ctrl-C while it starts: the factory does not hold it yet
            endpoint.stop()
            raise
    return endpoint


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- the pytest plugin --------------------------------------------------------------------


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("eikit")
    group.addoption(
        IMAGE_OPTION,
        default=os.environ.get(IMAGE_ENV) or None,
        help="run eikit_endpoint servers in containers from this image "
        "(default: $%s, else processes)" % IMAGE_ENV,
    )


class EndpointFactory:
    """``factory(model_dir, code_dir=None, image=None, env=None) -> Endpoint``; stops them all."""

    def __init__(self, default_image: Optional[str]) -> None:
        self.default_image = default_image
        self.started: List[Endpoint] = []

    def __call__(
        self,
        model_dir: PathLike,
        code_dir: Optional[PathLike] = None,
        image: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        *,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        wait: bool = True,
        multi_model: bool = False,
    ) -> Endpoint:
        endpoint = start_endpoint(
            model_dir,
            code_dir,
            image or self.default_image,
            env,
            startup_timeout=startup_timeout,
            wait=wait,
            multi_model=multi_model,
        )
        self.started.append(endpoint)
        return endpoint

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


def _image_option(config: Any) -> Optional[str]:
    value = config.getoption(IMAGE_OPTION, default=None)
    return str(value) if value else (os.environ.get(IMAGE_ENV) or None)


@pytest.fixture
def eikit_endpoint(request: Any) -> Iterator[EndpointFactory]:
    """Start servers for this test; each is stopped when the test ends."""
    factory = EndpointFactory(_image_option(request.config))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def eikit_session_endpoint(request: Any) -> Iterator[EndpointFactory]:
    """Start servers shared by the session; stopped when it ends."""
    factory = EndpointFactory(_image_option(request.config))
    yield factory
    factory.stop_all()
