"""``eikit local --image`` stops on Ctrl-C at every phase, whatever SIGINT disposition it
inherited, and a killed command leaves no container behind.

CI starts the test run as a background job of a non-interactive shell, so every process it
starts inherits SIGINT ignored; these tests run the command both ways ("default",
"ignored"). Each signal is sent at a moment the test holds open with a gate (a file the
model's code waits for) and recognises by a line of the command's output, never after a
sleep. On any timeout the test fails with the command's whole output.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import textwrap
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from docker.errors import NotFound

from eikit.images import leftovers
from eikit.local import free_port
from tests.commands import INHERITED, Command
from tests.container.conftest import save_linear_model

pytestmark = pytest.mark.container
Env = Dict[str, str]
Poll = Callable[[Callable[[], bool], float, str], None]

# predict_fn holds each request until the test creates gate/open in the model folder.
HELD_SCRIPT = """
import os
import time

import torch


def model_fn(model_dir):
    return torch.jit.load(os.path.join(model_dir, "model.pt")), model_dir


def predict_fn(data, loaded):
    model, model_dir = loaded
    print("predict_fn: holding the request until the gate opens", flush=True)
    deadline = time.monotonic() + 300
    while not os.path.exists(os.path.join(model_dir, "gate", "open")):
        if time.monotonic() > deadline:
            raise RuntimeError("the test never opened the gate")
        time.sleep(0.05)
    with torch.no_grad():
        return model(data)
"""


def _local(image: str, model: Path, port: int, sigint: str, *extra: str, **env: str) -> Command:
    return Command.eikit(
        "local", "--image", image, "--model-dir", str(model), "--port", str(port), *extra,
        sigint=sigint,
        env=dict(SAGEMAKER_MODEL_SERVER_WORKERS="1", EIKIT_WORKER_THREADS="1", **env),
    )  # fmt: skip


def _owned_by(engine: Any, pid: int) -> List[Dict[str, Any]]:
    """The containers (any state) whose owner label names ``pid``."""
    return list(
        engine.containers(all=True, filters={"label": "%s=%d" % (leftovers.OWNER_PID, pid)})
    )


def _stopped_in_phases(command: Command, engine: Any) -> None:
    """The stop said each phase, and left nothing behind."""
    output = command.output()
    for phase in (
        "SIGINT received: stopping",
        "SIGTERM sent",
        "waiting for container",
        "removed container",
        "closed",
    ):
        assert phase in output, (phase, output)
    assert _owned_by(engine, command.pid) == [], output


@pytest.fixture
def held_model(tmp_path: Path) -> Path:
    model = tmp_path / "held-model"
    (model / "code").mkdir(parents=True)
    (model / "gate").mkdir()
    save_linear_model(model / "model.pt")
    (model / "code" / "inference.py").write_text(textwrap.dedent(HELD_SCRIPT))
    return model


@pytest.mark.parametrize("sigint", INHERITED)
def test_eikit_local_image_serves_until_ctrl_c(
    pytorch_cpu_image: str, plain_model: Path, engine: Any, sigint: str
) -> None:
    """Ctrl-C once serving (while the command waits on the container): a graceful stop."""
    command = _local(pytorch_cpu_image, plain_model, free_port(), sigint, "--stop-timeout", "600")
    try:
        command.wait_for("serving at")
        (container,) = _owned_by(engine, command.pid)
        labels = container["Labels"]
        assert labels[leftovers.LOCAL] == "true"
        assert labels[leftovers.OWNER_HOST] == socket.gethostname()
        assert labels[leftovers.OWNER_STARTED] == leftovers.process_started(command.pid)
        assert "local --image" in labels[leftovers.OWNER_COMMAND]
        command.signal(signal.SIGINT)
        assert command.wait() == 0, command.output()  # drained: the container exited 0
        assert "exited with code 0" in command.output()
        _stopped_in_phases(command, engine)
    finally:
        command.close()


@pytest.mark.parametrize("sigint", INHERITED)
def test_ctrl_c_while_waiting_for_the_model_to_load(
    pytorch_cpu_image: str, gated_model: Path, engine: Any, sigint: str
) -> None:
    """Ctrl-C while model_fn is still loading (the command polls /ping)."""
    command = _local(pytorch_cpu_image, gated_model, free_port(), sigint, "--stop-timeout", "600")
    try:
        command.wait_for("waiting for /ping")
        command.signal(signal.SIGINT)
        command.wait()
        _stopped_in_phases(command, engine)
        assert "exited with code" in command.output()
    finally:
        (gated_model / "gate" / "open").touch()
        command.close()


@pytest.mark.parametrize("sigint", INHERITED)
def test_a_second_ctrl_c_kills_a_container_that_drains_a_held_request(
    pytorch_cpu_image: str, held_model: Path, engine: Any, sigint: str
) -> None:
    """The first Ctrl-C lets the server drain; a request held in predict_fn keeps it from
    exiting; the second Ctrl-C kills the container at once (long before --stop-timeout)."""
    port = free_port()
    command = _local(pytorch_cpu_image, held_model, port, sigint, "--stop-timeout", "600")
    answers: List[Any] = []

    def held_request() -> None:
        request = urllib.request.Request(
            "http://127.0.0.1:%d/invocations" % port,
            data=b"[[1.0, 2.0, 3.0, 4.0]]",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as reply:
                answers.append(reply.status)
        except urllib.error.HTTPError as error:
            answers.append(error.code)
        except OSError as error:  # the container was killed under it
            answers.append(error)

    client = threading.Thread(target=held_request, name="test-held-request")
    try:
        command.wait_for("serving at")
        client.start()
        command.wait_for("predict_fn: holding the request")
        command.signal(signal.SIGINT)
        command.wait_for("waiting for container")
        command.signal(signal.SIGINT)
        code = command.wait()
        assert "stop signal again: killing container" in command.output()
        assert code == 137, command.output()  # SIGKILL's exit code, from the engine
        _stopped_in_phases(command, engine)
    finally:
        (held_model / "gate" / "open").touch()
        command.close()
        if client.ident is not None:
            client.join(300)
    assert len(answers) == 1 and answers[0] != 200, answers  # cut off, never answered


def test_a_killed_command_leaves_no_container(
    pytorch_cpu_image: str, plain_model: Path, engine: Any, poll: Poll
) -> None:
    """SIGKILL cannot be handled: the command's reaper removes its container."""
    command = _local(pytorch_cpu_image, plain_model, free_port(), "ignored")
    try:
        command.wait_for("serving at")
        assert len(_owned_by(engine, command.pid)) == 1
        command.signal(signal.SIGKILL)
        command.wait()
        poll(lambda: not _owned_by(engine, command.pid), 120, "the reaper to remove it")
        command.wait_for("ended without removing it")  # what the reaper said
    finally:
        command.close()


def test_cleanup_removes_the_containers_whose_owner_has_ended(
    pytorch_cpu_image: str, engine: Any
) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()
    mine = leftovers.owner_labels()
    owners = {
        "gone": dict(mine, **{leftovers.OWNER_PID: str(ended.pid)}),
        "reused": dict(mine, **{leftovers.OWNER_STARTED: "2000-01-01T00:00:00.00Z"}),
        "alive": mine,
        "unlabelled": {leftovers.LOCAL: "true"},
    }
    created = {
        name: engine.create_container(pytorch_cpu_image, command=["true"], labels=labels)["Id"]
        for name, labels in owners.items()
    }
    done = Command.eikit("local", "--cleanup")
    try:
        assert done.wait() == 0, done.output()
        output = done.output()
        left = {c["Id"] for c in engine.containers(all=True, filters={"label": "eikit.local"})}
        assert created["gone"] not in left and created["reused"] not in left, output
        assert created["alive"] in left and created["unlabelled"] in left, output
        assert "removed container %s" % created["gone"][:12] in output
        assert "removed container %s" % created["reused"][:12] in output
        assert "(the pid is reused)" in output
        assert "kept container %s" % created["unlabelled"][:12] in output
        assert "no owner label" in output
    finally:
        done.close()
        for ident in created.values():
            with contextlib.suppress(NotFound):  # removed by the cleanup
                engine.remove_container(ident, force=True)
