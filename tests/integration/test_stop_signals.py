"""Foreground commands that run a server stop on Ctrl-C whatever SIGINT disposition they
inherited, a second signal during the stop kills at once, and a server process dies with
the process that started it.

CI starts the tests as a background job of a non-interactive shell: every process then
inherits SIGINT ignored. Each command runs both ways ("default", "ignored"). Signals are
sent at moments the test recognises (a line of output, a process that exists, a request
held by a gate), never after a sleep.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List

import pytest
import requests

from eikit import interrupts
from eikit.local import ServerProcess, free_port
from eikit.ping import wait_for_ping
from eikit.procs import alive, children
from tests.commands import INHERITED, Command
from tests.integration.conftest import ModelTree

# predict_fn (and model_fn, with HOLD_LOAD set) waits for the file TEST_GATE to appear.
GATED = """
import os
import time

import torch

GATE = os.environ["TEST_GATE"]


def _wait_for_gate(what):
    print("%s: waiting for the gate" % what, flush=True)
    deadline = time.monotonic() + 300
    while not os.path.exists(GATE):
        if time.monotonic() > deadline:
            raise RuntimeError("the test never opened the gate")
        time.sleep(0.05)


def model_fn(model_dir):
    if os.environ.get("HOLD_LOAD"):
        _wait_for_gate("model_fn")
    return torch.jit.load(os.path.join(model_dir, "model.pt"))


def predict_fn(data, model):
    _wait_for_gate("predict_fn")
    with torch.no_grad():
        return model(data)
"""


def _poll(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelTree:
    """A model whose hooks wait for ``tree.base / "gate"`` (TEST_GATE, inherited by every
    process the test starts)."""
    tree = ModelTree(tmp_path / "ml")
    tree.script(GATED)
    monkeypatch.setenv("TEST_GATE", str(tree.base / "gate"))
    return tree


@pytest.mark.parametrize("sigint", INHERITED)
def test_eikit_local_stops_on_ctrl_c(tree: ModelTree, tmp_path: Path, sigint: str) -> None:
    port = free_port()
    command = Command.eikit(
        "local", "--model-dir", str(tree.model_dir), "--port", str(port),
        sigint=sigint,
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
    )  # fmt: skip
    try:
        url = "http://127.0.0.1:%d" % port
        if wait_for_ping(url, time.monotonic() + 180, command.process) != 200:
            command.fail("eikit local never answered /ping 200")
        workers = children(command.pid)
        command.signal(signal.SIGINT)
        assert command.wait() == 0, command.output()
        assert "signal 2: draining" in command.output()
        assert not [pid for pid in workers if alive(pid)], command.output()
    finally:
        command.close()


@pytest.mark.parametrize("sigint", INHERITED)
def test_eikit_reliability_stops_on_ctrl_c_and_its_server_with_it(sigint: str) -> None:
    command = Command.eikit("reliability", "--duration", "600", "--faults", "", sigint=sigint)
    try:
        command.wait_for("server ready on")
        (server,) = [pid for pid in children(command.pid) if alive(pid)]
        command.signal(signal.SIGINT)
        assert command.wait() == 130, command.output()
        output = command.output()
        assert "SIGINT received: stopping" in output
        assert "stopping eikit serve (pid %d): SIGTERM sent" % server in output
        assert "eikit serve (pid %d) exited with code 0" % server in output
        assert not alive(server)
    finally:
        command.close()


@pytest.mark.parametrize("sigint", INHERITED)
def test_eikit_advise_stops_on_ctrl_c_while_its_server_loads(
    gated: ModelTree, tmp_path: Path, sigint: str
) -> None:
    command = Command.eikit(
        "advise", "--model-dir", str(gated.model_dir), "--json", "[[1.0, 2.0, 3.0, 4.0]]",
        "--no-chart", "--out", str(tmp_path / "out"),
        sigint=sigint, env={"HOLD_LOAD": "1"},
    )  # fmt: skip
    try:
        command.wait_for("measuring:")
        servers: List[int] = []

        def server_started() -> bool:
            servers[:] = [pid for pid in children(command.pid) if alive(pid)]
            return bool(servers)

        _poll(server_started, "advise to start its server")
        command.signal(signal.SIGINT)
        assert command.wait() == 130, command.output()
        assert "stopping eikit serve (pid %d)" % servers[0] in command.output()
        assert not alive(servers[0])
    finally:
        (gated.base / "gate").touch()
        command.close()


PARENT = """
import sys
import time
from pathlib import Path

from eikit.local import ServerProcess

server = ServerProcess(Path(sys.argv[1]), {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}).start()
print("serve pid %d at %s" % (server.process.pid, server.url), flush=True)
time.sleep(600)
"""


def test_a_killed_parent_takes_its_server_process_along(tree: ModelTree) -> None:
    """SIGKILL cannot be handled: the server gets SIGTERM from the kernel (PDEATHSIG)."""
    parent = Command([sys.executable, "-c", PARENT, str(tree.base)])
    try:
        words = parent.wait_for("serve pid").split()
        server, url = int(words[2]), words[4]
        if wait_for_ping(url, time.monotonic() + 180) != 200:
            parent.fail("the server never answered /ping 200")
        parent.signal(signal.SIGKILL)
        parent.wait()
        _poll(lambda: not alive(server), "the server to end with its parent")
    finally:
        parent.close()


def test_a_second_signal_kills_a_server_that_is_draining(gated: ModelTree, tmp_path: Path) -> None:
    """ServerProcess.stop under stop_signals(), after a first SIGINT: SIGTERM, the server
    drains a request held in predict_fn; a second SIGINT during that wait kills it at once
    (long before the timeout)."""
    log_path = tmp_path / "server.log"
    env = {
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "600",
        "EIKIT_GRACEFUL_TIMEOUT": "600",
    }
    server = ServerProcess(gated.base, env)
    answers: List[Any] = []

    def held() -> None:
        try:
            answers.append(
                requests.post(
                    server.url + "/invocations",
                    data=b"[[1.0, 2.0, 3.0, 4.0]]",
                    headers={"Content-Type": "application/json"},
                    timeout=600,
                ).status_code
            )
        except requests.RequestException as exc:
            answers.append(exc)

    class SignalWhileWaiting(logging.Handler):
        """Sends SIGINT to this process once the stop says SIGTERM went out."""

        def emit(self, record: logging.LogRecord) -> None:
            if "SIGTERM sent" in record.getMessage():
                os.kill(os.getpid(), signal.SIGINT)

    class Record(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            phases.append(record.getMessage())

    phases: List[str] = []
    added = [Record(), SignalWhileWaiting()]
    stop_log = interrupts.stop_log
    level = stop_log.level
    client = threading.Thread(target=held, name="test-held-request")
    with log_path.open("wb") as log_file:
        server.start(stdout=log_file)
        try:
            assert server.wait_ready(180) == 200, log_path.read_text()
            client.start()
            _poll(lambda: "predict_fn: waiting" in log_path.read_text(), "a held request")
            stop_log.setLevel(logging.INFO)
            for handler in added:
                stop_log.addHandler(handler)
            with interrupts.stop_signals():
                try:  # as a command does: the first signal interrupts, the stop follows
                    signal.raise_signal(signal.SIGINT)
                except KeyboardInterrupt:
                    code = server.stop(600)
        finally:
            for handler in added:
                stop_log.removeHandler(handler)
            stop_log.setLevel(level)
            (gated.base / "gate").touch()
            server.stop()
            if client.ident is not None:
                client.join(60)
    assert code == -signal.SIGKILL, (phases, log_path.read_text())
    assert any("stop signal again: killing eikit serve" in phase for phase in phases), phases
    assert answers and answers[0] != 200, answers


@pytest.mark.parametrize("sigint", INHERITED)
def test_a_second_ctrl_c_stops_eikit_local_while_it_drains(
    gated: ModelTree, tmp_path: Path, sigint: str
) -> None:
    """eikit local (a process, not a container): the first Ctrl-C drains a request held in
    predict_fn for up to --stop-timeout; the second stops the server at once."""
    port = free_port()
    command = Command.eikit(
        "local", "--model-dir", str(gated.model_dir), "--port", str(port), "--stop-timeout",
        "600",
        sigint=sigint,
        env={
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "600",
        },
    )  # fmt: skip
    answers: List[Any] = []

    def held() -> None:
        try:
            answers.append(
                requests.post(
                    "http://127.0.0.1:%d/invocations" % port,
                    data=b"[[1.0, 2.0, 3.0, 4.0]]",
                    headers={"Content-Type": "application/json"},
                    timeout=600,
                ).status_code
            )
        except requests.RequestException as exc:
            answers.append(exc)

    client = threading.Thread(target=held, name="test-held-request")
    try:
        if wait_for_ping("http://127.0.0.1:%d" % port, time.monotonic() + 180) != 200:
            command.fail("eikit local never answered /ping 200")
        client.start()
        command.wait_for("predict_fn: waiting")
        command.signal(signal.SIGINT)
        command.wait_for("signal 2: draining")
        command.signal(signal.SIGINT)
        command.wait()
    finally:
        (gated.base / "gate").touch()
        command.close()
        if client.ident is not None:
            client.join(60)
    assert answers and answers[0] != 200, (answers, command.output())
