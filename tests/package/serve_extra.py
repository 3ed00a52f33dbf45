"""Serve the suites' linear model with an installed eikit extra, as a user would after
``pip install 'eikit[FRAMEWORK]'``: the ``eikit`` console script, a real server process, real
HTTP. Run with the Python of a fresh environment holding eikit built as a wheel; exits
non-zero, with the server's output, if the model does not serve the expected answer.

    python tests/package/serve_extra.py mxnet
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.frameworks: the model and its requests

from tests.frameworks import FRAMEWORKS, expected  # noqa: E402

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]
READY_S = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def main(name: str) -> int:
    framework = FRAMEWORKS[name]
    eikit = Path(sys.executable).parent / "eikit"
    with tempfile.TemporaryDirectory(prefix="eikit-extra-") as scratch:
        model = Path(scratch) / "model"
        model.mkdir()
        framework.save_model(model)
        port = free_port()
        url = "http://127.0.0.1:%d" % port
        log = Path(scratch) / "server.log"
        env = dict(os.environ, EIKIT_FRAMEWORK=name, SAGEMAKER_MODEL_SERVER_WORKERS="1")
        env["XDG_CACHE_HOME"] = str(Path(scratch) / "cache")
        with log.open("wb") as out:
            server = subprocess.Popen(
                [str(eikit), "local", "--model-dir", str(model), "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + READY_S
            while ping(url) != 200:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("%s: not ready\n%s" % (name, log.read_text()))
                time.sleep(0.2)
            request = urllib.request.Request(
                url + "/invocations",
                data=framework.request(ROWS),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as reply:
                answer = framework.answer(json.loads(reply.read()))
            if answer != expected(ROWS):
                raise SystemExit("%s: answered %r, expected %r" % (name, answer, expected(ROWS)))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    print("eikit[%s] on Python %s served the model" % (name, sys.version.split()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
