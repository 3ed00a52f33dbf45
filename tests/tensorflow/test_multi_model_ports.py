"""A multi-model endpoint on the TF Serving path: every model's workers take their TF Serving
ports from SAGEMAKER_SAFE_PORT_RANGE, and unloads give them back, so loads and unloads can
go on for ever in a range that holds two models (issue 14: ports came from a number that
only grew, and loads failed once it passed the range). Real processes, the stand-in binary."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator, List

import pytest
import requests

from eikit.local import ServerProcess
from tests.tensorflow.helpers import BASE_ENV
from tests.tensorflow.standin import fixtures

pytest.importorskip("tensorflow_serving")

READY = 300.0


def free_range(size: int) -> str:
    """``low-high``: ``size`` consecutive loopback ports nothing listens on now, below the
    ephemeral range (where the kernel picks "free" ports for other servers and clients)."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    for low in range(20011, ephemeral - size, 97):
        held: List[socket.socket] = []
        try:
            for port in range(low, low + size):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return "%d-%d" % (low, low + size - 1)
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    pytest.skip("no %d consecutive free ports" % size)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = dict(BASE_ENV)
    env.update(
        SAGEMAKER_MULTI_MODEL="true",
        EIKIT_TFS_BINARY=str(fixtures.write_binary(tmp_path / "bin")),
        SAGEMAKER_SAFE_PORT_RANGE=free_range(4),  # two workers' (gRPC, REST) pairs
    )
    base = tmp_path / "ml"
    base.mkdir()
    process = ServerProcess(base, env)
    log = tmp_path / "server.log"
    process.start(stdout=log.open("wb"))
    assert process.wait_ready(READY) == 200, log.read_text()
    process.log = log  # type: ignore[attr-defined]
    yield process
    process.stop()


def test_loads_and_unloads_reuse_the_safe_port_range(server: ServerProcess) -> None:
    url = fixtures.model_tree(server.base_dir / "models" / "m", {"half": [1]})
    body = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
    for cycle in range(3):  # six loads into a range with room for two at a time
        for name in ("a", "b"):
            loaded = requests.post(
                server.url + "/models", json={"model_name": name, "url": str(url)}, timeout=600
            )
            log = server.log.read_text()  # type: ignore[attr-defined]
            assert loaded.status_code == 200, "cycle %d: %s\n%s" % (cycle, loaded.text, log)
            answer = requests.post(server.url + "/models/%s/invoke" % name, json=body, timeout=60)
            assert answer.json() == {"predictions": [[1.0, 9.5]]}, answer.text
        for name in ("a", "b"):
            assert requests.delete(server.url + "/models/" + name, timeout=120).status_code == 200
    # Both slots taken and idle: a third model evicts the least recently used one.
    for name in ("a", "b", "c"):
        loaded = requests.post(
            server.url + "/models", json={"model_name": name, "url": str(url)}, timeout=600
        )
        assert loaded.status_code == 200, loaded.text
    listed = requests.get(server.url + "/models", timeout=10).json()["models"]
    assert sorted(m["modelName"] for m in listed) == ["b", "c"]
