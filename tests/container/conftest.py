"""Container tests: the pytorch cpu image, built offline once per session, run as SageMaker would.

Needs a Docker engine (``scripts/start-docker``); every test here is skipped, with the reason,
where none answers. The image is built from ``docker/pytorch/Dockerfile`` on a debootstrap
base (``scripts/make-base-image``, made here when missing) with packages from a local
wheelhouse (``scripts/make-wheelhouse``), so nothing is pulled or downloaded from an index.

Settings (environment):
  EIKIT_CONTAINER_TEST_IMAGE       use this image instead of building one
  EIKIT_CONTAINER_TEST_BASE_IMAGE  base image (default eikit-base:bookworm)
  EIKIT_CONTAINER_TEST_WHEELHOUSE  wheelhouse inside the repository (default .wheelhouse)
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence

import pytest

pytest.importorskip("docker")
torch = pytest.importorskip("torch")

from eikit.images.build import build_image, connect, engine_unavailable_reason  # noqa: E402
from eikit.images.matrix import image_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("EIKIT_CONTAINER_TEST_BASE_IMAGE", "eikit-base:bookworm")
WHEELHOUSE = os.environ.get("EIKIT_CONTAINER_TEST_WHEELHOUSE", ".wheelhouse")
TEST_TAG = "eikit-test:pytorch-cpu"
# One worker with one torch thread: the machines running these have 2 cores.
LEAN = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "EIKIT_WORKER_THREADS": "1"}
TIMINGS: List[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Load eikit's own pytest plugin when its entry point is not installed (yet)."""
    manager = config.pluginmanager
    if not manager.has_plugin("eikit") and not manager.has_plugin("eikit.testing"):
        import eikit.testing

        if not manager.is_registered(eikit.testing):
            manager.register(eikit.testing, "eikit.testing")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in TIMINGS:
        terminalreporter.write_line("eikit container tests: " + line)


# CI sets this: there, a missing engine is a failure, not a reason to skip.
REQUIRED = os.environ.get("EIKIT_REQUIRE_CONTAINER_TESTS") == "1"


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    reason = engine_unavailable_reason()
    if reason:
        message = "no Docker engine: %s (scripts/start-docker starts one)" % reason
        if REQUIRED:
            pytest.fail(message + "; EIKIT_REQUIRE_CONTAINER_TESTS=1")
        pytest.skip(message)
    api = connect(timeout=600)
    yield api
    api.close()


def _has_image(api: Any, name: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        api.inspect_image(name)
    except ImageNotFound:
        return False
    return True


def _run_script(*argv: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts" / argv[0]), *argv[1:]],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        pytest.fail("scripts/%s failed (%d):\n%s" % (" ".join(argv), done.returncode, output))
    TIMINGS.append("scripts/%s took %.0f s" % (" ".join(argv), time.monotonic() - started))


def cpu_test_image(
    engine: Any,
    framework: str,
    tag: str,
    prebuilt_variable: str,
    wheelhouse: str = WHEELHOUSE,
    wheelhouse_args: Sequence[str] = (),
) -> str:
    """``framework``'s cpu image, built offline from the base image and a wheelhouse
    (``scripts/make-wheelhouse [wheelhouse_args] wheelhouse``; layers cached between
    sessions), tagged ``tag``; or the prebuilt image the variable ``prebuilt_variable`` names."""
    prebuilt = os.environ.get(prebuilt_variable)
    if prebuilt:
        if not _has_image(engine, prebuilt):
            pytest.fail("%s=%s is not on the engine" % (prebuilt_variable, prebuilt))
        return prebuilt
    if not _has_image(engine, BASE_IMAGE):
        if os.geteuid() != 0:
            pytest.skip(
                "base image %s missing: run scripts/make-base-image %s" % ((BASE_IMAGE,) * 2)
            )
        _run_script("make-base-image", BASE_IMAGE)
    options = [arg for arg in wheelhouse_args if arg.startswith("--")]
    requirements = [arg for arg in wheelhouse_args if not arg.startswith("--")]
    _run_script("make-wheelhouse", *options, wheelhouse, *requirements)
    spec = image_spec(framework, "cpu", base_image=BASE_IMAGE, wheelhouse=ROOT / wheelhouse)
    result = build_image(spec, [tag], client=engine)
    TIMINGS.append(
        "built %s in %.0f s (%d of %d steps cached), %.0f MB"
        % (
            result.tags[0],
            result.seconds,
            result.cached_steps,
            result.steps,
            engine.inspect_image(tag)["Size"] / 1e6,
        )
    )
    return tag


def run_in_image(engine: Any, image: str, command: Any, binds: Dict[str, str]) -> str:
    """Run ``command`` in ``image`` to the end (host network; ``binds``: host folder ->
    container folder, read-write); its output, failing the test unless it exits 0."""
    container = engine.create_container(
        image,
        command=command,
        volumes=list(binds.values()),
        host_config=engine.create_host_config(
            network_mode="host", binds={k: {"bind": v, "mode": "rw"} for k, v in binds.items()}
        ),
    )
    try:
        engine.start(container)
        status = engine.wait(container, timeout=300)["StatusCode"]
        output = engine.logs(container).decode("utf-8", "replace")
    finally:
        engine.remove_container(container, force=True)
    assert status == 0, output
    return output


@pytest.fixture(scope="session")
def pytorch_cpu_image(engine: Any) -> str:
    """The pytorch cpu image (``EIKIT_CONTAINER_TEST_IMAGE``: a prebuilt one)."""
    return cpu_test_image(engine, "pytorch", TEST_TAG, "EIKIT_CONTAINER_TEST_IMAGE")


# --- models and scripts -----------------------------------------------------------------------


def save_linear_model(path: Path) -> None:
    """y = [x0, x1 + x2 + x3 + 0.5] for 4 features: easy to check by hand."""
    layer = torch.nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
        layer.bias.copy_(torch.tensor([0.0, 0.5]))
    torch.jit.script(layer.eval()).save(str(path))


USER_SCRIPT = """
import json
import os

import torch

from eikit import InferenceError


def model_fn(model_dir):
    model = torch.jit.load(os.path.join(model_dir, "model.pt"))
    return {"model": model, "model_dir": model_dir,
            "writable": os.access(model_dir, os.W_OK), "script": __file__}


def input_fn(body, content_type):
    data = json.loads(body)
    if "instances" not in data:
        raise InferenceError("'instances' is required", status=422)
    return torch.tensor(data["instances"], dtype=torch.float32)


def predict_fn(data, loaded):
    with torch.no_grad():
        return loaded["model"](data), loaded


def output_fn(prediction, accept):
    outputs, loaded = prediction
    body = {"predictions": outputs.tolist(), "model_dir": loaded["model_dir"],
            "model_dir_writable": loaded["writable"], "script": loaded["script"],
            "bind_port": os.environ.get("SAGEMAKER_BIND_TO_PORT")}
    return json.dumps(body), "application/json"
"""

# model_fn waits for gate/open to appear in the (read-only mounted) model folder.
GATED_SCRIPT = """
import os
import time

import torch


def model_fn(model_dir):
    gate = os.path.join(model_dir, "gate", "open")
    deadline = time.monotonic() + 120
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise RuntimeError("the test never opened the gate")
        time.sleep(0.05)
    return torch.jit.load(os.path.join(model_dir, "model.pt"))
"""


@pytest.fixture(scope="session")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TorchScript model and no script: the default hooks."""
    model = tmp_path_factory.mktemp("plain-model")
    save_linear_model(model / "model.pt")
    return model


@pytest.fixture(scope="session")
def scripted_model(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """A model folder and, apart from it, a code folder with inference.py."""
    model = tmp_path_factory.mktemp("scripted-model")
    save_linear_model(model / "model.pt")
    code = tmp_path_factory.mktemp("scripted-code")
    (code / "inference.py").write_text(textwrap.dedent(USER_SCRIPT))
    return {"model": model, "code": code}


@pytest.fixture
def gated_model(tmp_path: Path) -> Path:
    model = tmp_path / "gated-model"
    (model / "code").mkdir(parents=True)
    (model / "gate").mkdir()
    save_linear_model(model / "model.pt")
    (model / "code" / "inference.py").write_text(textwrap.dedent(GATED_SCRIPT))
    return model


def _poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.05)


@pytest.fixture(scope="session")
def poll() -> Callable[[Callable[[], bool], float, str], None]:
    """``poll(check, timeout, what)``: call ``check`` at a short interval until it is true."""
    return _poll


@pytest.fixture(scope="session")
def lean_env() -> Dict[str, str]:
    """Server settings for these tests: one worker, one torch thread."""
    return dict(LEAN)
