"""The pytorch cpu image, run as SageMaker runs it: /opt/ml/model mounted, `serve`, host network."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

from eikit.images.container import ContainerEndpoint, ContainerError
from eikit.local import free_port

pytestmark = pytest.mark.container
Env = Dict[str, str]
Poll = Callable[[Callable[[], bool], float, str], None]


@pytest.fixture(scope="module")
def default_endpoint(
    eikit_session_endpoint: Any, pytorch_cpu_image: str, plain_model: Path, lean_env: Env
) -> Any:
    return eikit_session_endpoint(plain_model, image=pytorch_cpu_image, env=lean_env)


@pytest.fixture(scope="module")
def script_endpoint(
    eikit_session_endpoint: Any,
    pytorch_cpu_image: str,
    scripted_model: Dict[str, Path],
    lean_env: Env,
) -> Any:
    return eikit_session_endpoint(
        scripted_model["model"], scripted_model["code"], image=pytorch_cpu_image, env=lean_env
    )


def expected(rows: List[List[float]]) -> List[List[float]]:
    """What save_linear_model's model answers: [x0, x1 + x2 + x3 + 0.5]."""
    return [[r[0], r[1] + r[2] + r[3] + 0.5] for r in rows]


def npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


# --- the image ----------------------------------------------------------------------------


def test_labels_and_default_command(engine: Any, pytorch_cpu_image: str) -> None:
    config = engine.inspect_image(pytorch_cpu_image)["Config"]
    labels = config["Labels"]
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    # claimed because the runtime serves the multi-model API (test below)
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    assert config["Cmd"] == ["serve"]


def test_other_commands_run_as_given(engine: Any, pytorch_cpu_image: str) -> None:
    """`docker run IMAGE other-cmd` runs that command, not the server."""
    container = engine.create_container(
        pytorch_cpu_image,
        command=["python", "-c", "import eikit, torch; print('ok', torch.__version__)"],
        host_config=engine.create_host_config(network_mode="host"),
    )
    try:
        engine.start(container)
        status = engine.wait(container, timeout=120)["StatusCode"]
        output = engine.logs(container).decode()
    finally:
        engine.remove_container(container, force=True)
    assert status == 0, output
    assert output.strip() == "ok 2.13.0+cpu"


# --- serving ------------------------------------------------------------------------------


def test_default_hooks_serve_a_torchscript_model(default_endpoint: Any) -> None:
    rows = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]
    answer = default_endpoint.invoke(npy(rows), "application/x-npy", "application/json")
    assert answer.status == 200, answer.text
    assert answer.json() == expected(rows)
    answer = default_endpoint.invoke(rows, accept="application/json")
    assert answer.status == 200, answer.text
    assert answer.json() == expected(rows)


def test_user_script_from_a_separate_code_folder(script_endpoint: Any) -> None:
    rows = [[1.0, 1.0, 1.0, 1.0]]
    answer = script_endpoint.invoke({"instances": rows})
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["predictions"] == expected(rows)
    assert body["model_dir"] == "/opt/ml/model"
    assert body["script"] == "/opt/ml/model/code/inference.py"
    assert body["model_dir_writable"] is False  # mounted read-only
    assert body["bind_port"] == script_endpoint.url.rsplit(":", 1)[1]


@pytest.mark.parametrize(
    "body, content_type, accept, status",
    [
        (b'{"not json', "application/json", "application/json", 400),
        (b"\x00\x01", "application/x-npy", "application/json", 400),
        (b"[[1, 2, 3, 4]]", "application/x-unknown", "application/json", 415),
        (b"[[1, 2, 3, 4]]", "application/json", "image/png", 406),
    ],
)
def test_bad_requests_get_their_4xx(
    default_endpoint: Any, body: bytes, content_type: str, accept: str, status: int
) -> None:
    answer = default_endpoint.invoke(body, content_type, accept)
    assert answer.status == status, answer.text
    error = answer.json()
    assert set(error) == {"error", "code"}
    assert "Traceback" not in answer.text


def test_user_code_chooses_its_status(script_endpoint: Any) -> None:
    answer = script_endpoint.invoke({"rows": []})
    assert answer.status == 422, answer.text
    assert "'instances' is required" in answer.json()["error"]


def test_ping_is_503_until_the_model_is_loaded(
    eikit_endpoint: Any, pytorch_cpu_image: str, gated_model: Path, lean_env: Env, poll: Poll
) -> None:
    endpoint = eikit_endpoint(gated_model, image=pytorch_cpu_image, env=lean_env, wait=False)
    seen = set()

    def loading() -> bool:
        status = endpoint.ping(timeout=2)
        assert status != 200, "ready before model_fn returned"
        seen.add(status)
        return status == 503

    poll(loading, 120, "/ping to answer 503 while model_fn runs")
    assert endpoint.invoke([[1.0, 2.0, 3.0, 4.0]]).status == 503
    (gated_model / "gate" / "open").touch()
    poll(lambda: endpoint.ping() == 200, 120, "/ping to answer 200 once the model loaded")
    answer = endpoint.invoke([[1.0, 2.0, 3.0, 4.0]], accept="application/json")
    assert answer.status == 200, answer.text


def test_sigterm_stops_the_container_cleanly(
    eikit_endpoint: Any, pytorch_cpu_image: str, plain_model: Path, lean_env: Env
) -> None:
    endpoint = eikit_endpoint(plain_model, image=pytorch_cpu_image, env=lean_env)
    assert endpoint.ping() == 200
    started = time.monotonic()
    endpoint.container.send_signal("SIGTERM")
    code = endpoint.container.wait(timeout=30)
    elapsed = time.monotonic() - started
    assert code == 0, endpoint.logs()
    assert elapsed < 30


# --- eikit.images.container ---------------------------------------------------------------


def test_a_missing_image_is_never_pulled(plain_model: Path, engine: Any) -> None:
    """(``engine``: skipped, like the rest, where no engine runs.)"""
    endpoint = ContainerEndpoint("eikit-test:no-such-image", plain_model, port=free_port())
    with pytest.raises(ContainerError, match="never pulled"):
        endpoint.start()


def test_a_server_that_exits_is_reported_with_its_log(
    pytorch_cpu_image: str, plain_model: Path
) -> None:
    command = ["python", "-c", "import sys; print('broken on purpose'); sys.exit(3)"]
    endpoint = ContainerEndpoint(pytorch_cpu_image, plain_model, command=command, port=free_port())
    with pytest.raises(ContainerError, match="exited with code 3") as info, endpoint:
        pass
    assert "broken on purpose" in str(info.value)
    assert endpoint.container_id is None  # stopped and removed
    assert endpoint.exit_code == 3


def test_multi_model_mode_serves_a_folder_of_models(
    eikit_endpoint: Any,
    pytorch_cpu_image: str,
    plain_model: Path,
    scripted_model: Dict[str, Path],
    lean_env: Env,
    tmp_path: Path,
) -> None:
    """SAGEMAKER_MULTI_MODEL=true in the image: models mounted as SageMaker mounts them under
    /opt/ml/models, loaded through POST /models, invoked by name, unloaded."""
    import shutil

    models = tmp_path / "models"
    shutil.copytree(str(plain_model), str(models / "plain"))
    shutil.copytree(str(scripted_model["model"]), str(models / "customer-7"))
    shutil.copytree(str(scripted_model["code"]), str(models / "customer-7" / "code"))
    endpoint = eikit_endpoint(models, image=pytorch_cpu_image, env=lean_env, multi_model=True)
    assert sorted(endpoint.models()) == ["customer-7", "plain"]
    plain = endpoint.invoke([[1.0, 2.0, 3.0, 4.0]], target_model="plain")
    assert plain.status == 200, plain.text
    assert plain.json() == expected([[1.0, 2.0, 3.0, 4.0]])
    scripted = endpoint.invoke({"instances": [[1.0, 2.0, 3.0, 4.0]]}, target_model="customer-7")
    assert scripted.status == 200, scripted.text
    assert scripted.json()["model_dir"].startswith("/opt/ml/models/")  # its own code ran
    assert scripted.json()["model_dir_writable"] is False
    assert endpoint.invoke([[1.0]], target_model="nobody").status == 404
    assert endpoint.unload_model("plain").status == 200
    assert endpoint.invoke([[1.0, 2.0, 3.0, 4.0]], target_model="plain").status == 404
