"""AWS's model server stack, run as its containers run it: multi-model-server 1.1.11 with
sagemaker-inference and sagemaker-pytorch-inference, in a virtualenv of its own, on loopback.

Two ways, as AWS's containers start it:

* ``MmsServer``: a multi-model endpoint (``SAGEMAKER_MULTI_MODEL=true``), MMS started with
  the config text sagemaker-inference writes (bench/mme.py).
* ``MmsServed``: one model, started by sagemaker-inference's own
  ``model_server.start_model_server()`` with sagemaker-pytorch-inference's handler service,
  as the MMS-era PyTorch containers' ``serving.main()`` does (bench/vs_mms.py).

Shared: the virtualenv (``ensure_mms_venv``), its environment (``mms_env``) and a port MMS
accepts (``low_free_port``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import server as srv  # noqa: E402
from eikit.bench.served import Served  # noqa: E402
from eikit.ping import exited, wait_ready  # noqa: E402


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# AWS's stack, as its PyTorch inference containers install it; torch is the one eikit's
# venv runs, so both servers run the same kernels.
MMS_PACKAGES = (
    "multi-model-server==1.1.11",
    "sagemaker-inference==1.10.1",
    "sagemaker-pytorch-inference==2.0.25",
    # sagemaker-inference imports pkg_resources, which setuptools 81 and later no longer have.
    "setuptools<81",
)
MMS_HANDLER = "sagemaker_pytorch_serving_container.handler_service"
DEFAULT_MMS_VENV = REPO / "bench" / ".venv-mms"


# --------------------------------------------------------------------------------- servers


def low_free_port(rng: Optional[random.Random] = None) -> int:
    """A free loopback port below 32767: MMS refuses higher ones ("Invalid port number"),
    and the kernel's ephemeral ports (port 0) start at 32768."""
    rng = rng or random.Random()
    for _ in range(200):
        port = rng.randrange(10000, 32767)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((srv.HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32767 on 127.0.0.1")


def mms_env(venv: Path, work: Path, workers: Optional[int] = None) -> Dict[str, str]:
    """What MMS's processes need on top of this process's environment: the venv's commands
    first on PATH, a temp dir and log dir of their own under ``work`` (MMS keeps its pid
    file in the temp dir: one of our own per start, not the machine's), and one torch
    thread per worker, as eikit's bench runs."""
    tmp, logs = work / "tmp", work / "logs"
    tmp.mkdir(parents=True, exist_ok=True)
    logs.mkdir(exist_ok=True)
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(tmp),
        "TEMP": str(tmp),
        "LOG_LOCATION": str(logs),
        "METRICS_LOCATION": str(logs),
        "OMP_NUM_THREADS": "1",
    }
    if workers is not None:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    return env


class MmsServer(srv.Server):
    """AWS's multi-model-server in MME mode, configured as sagemaker-inference does."""

    def __init__(self, venv: Path, work: Path, ready_timeout: float = 120.0) -> None:
        super().__init__(work, log_path=work / "mms.log", ready_timeout=ready_timeout)
        self.venv = venv
        self.config = ""

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(mms_env(self.venv, self.base_dir))
        env.update(
            SAGEMAKER_MULTI_MODEL="true",
            SAGEMAKER_HANDLER=MMS_HANDLER,
            SAGEMAKER_BIND_TO_PORT=str(self.port),
        )
        env.pop("VIRTUAL_ENV", None)
        return env

    def start(self) -> None:
        self.port = low_free_port()
        env = self.env()
        py = str(self.venv / "bin" / "python")
        # The very text start_model_server writes to /etc/sagemaker-mms.properties.
        gen = (
            "from sagemaker_inference import environment, model_server as m;"
            "print(m._generate_mms_config_properties(environment.Environment()), end='')"
        )
        text = _output([py, "-c", gen], env)
        # Loopback only: AWS binds 0.0.0.0 inside its container.
        self.config = text.replace("0.0.0.0", srv.HOST)
        conf = self.base_dir / "mms.properties"
        conf.write_text(self.config)
        log4j = _output(
            [py, "-c", "from sagemaker_inference import model_server as m;"
             "print(m.DEFAULT_MMS_LOG_FILE, end='')"],
            env,
        )  # fmt: skip
        cmd = [
            str(self.venv / "bin" / "multi-model-server"),
            "--start",
            "--foreground",
            "--model-store",
            "/",
            "--mms-config",
            str(conf),
            "--log-config",
            log4j,
        ]
        self.serve_cmd = " ".join(cmd)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=str(self.base_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready(t0)

    def _wait_ready(self, t0: float) -> None:
        ready = wait_ready(self.url, t0 + self.ready_timeout, exited(self.proc), interval=0.1)
        if ready.status == 200:
            self.startup_s = time.monotonic() - t0
            return
        if not ready.timed_out:
            raise RuntimeError(f"MMS {ready.why_not} before it was ready; log:\n{self.log_tail()}")
        self.stop()
        raise TimeoutError(
            f"MMS not ready after {self.ready_timeout:.0f}s; log:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        # sagemaker-inference forwards SIGTERM to MMS's java process: stop the launcher,
        # java and its Python workers together (their own session), then wait.
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.proc.pid, 0)
                except ProcessLookupError:
                    break
                self.proc.poll()
                time.sleep(0.1)
        return super().stop(timeout)


def _output(cmd: List[str], env: Dict[str, str]) -> str:
    """stdout of ``cmd``; its last lines of stderr in the error if it fails."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-8:])
        raise RuntimeError(f"{' '.join(cmd)[:120]} failed ({done.returncode}):\n{tail}")
    return done.stdout


def ensure_mms_venv(
    venv: Path, torch_version: str, say: Callable[[str], None] = _stderr
) -> Dict[str, Any]:
    """MMS's own virtualenv (made on first use): what it holds and its Java."""
    java = shutil.which("java", path=os.environ.get("PATH"))
    if os.environ.get("JAVA_HOME"):
        java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    if not java or not Path(java).exists():
        raise RuntimeError("MMS needs Java 8+: no java on PATH (or JAVA_HOME)")
    jv = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    java_version = (jv.stderr or jv.stdout).splitlines()[0] if (jv.stderr or jv.stdout) else "?"
    wanted = [*MMS_PACKAGES, f"torch=={torch_version.split('+')[0]}"]
    stamp = venv / ".eikit-bench-mms"
    if not (stamp.is_file() and stamp.read_text().split() == wanted):
        say(f"mms: making its virtualenv {venv} ({', '.join(wanted)}); once, about a minute")
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        (venv / ".gitignore").write_text("*\n")  # never committed, never linted
        pip = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", *wanted],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if pip.returncode != 0:
            tail = "\n".join((pip.stdout + pip.stderr).splitlines()[-15:])
            raise RuntimeError(f"pip install into {venv} failed:\n{tail}")
        stamp.write_text("\n".join(wanted) + "\n")
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split()
    keep = ("multi-model-server", "sagemaker-inference", "sagemaker-pytorch-inference", "torch")
    versions = [line for line in freeze if line.split("==")[0].lower().replace("_", "-") in keep]
    return {"venv": str(venv), "java": java, "java_version": java_version, "packages": versions}


# ---------------------------------------------------------------------------- single model

# sagemaker-inference's start_model_server(handler_service=...), as the MMS-era PyTorch
# containers' serving.main() calls it: it writes MMS's config (its default properties plus
# workers, port, handler), runs ``multi-model-server --start ... --models model=<base>/model``
# and waits on the java process, forwarding SIGTERM. Three seams, for a shared host rather
# than a container, and nothing else changed:
# - a container's PID 1 adopts the java process the MMS launcher leaves behind; a subreaper
#   does here, so java and its workers stay in this process's tree (measured as a whole);
# - the config goes to argv[1], not /etc/sagemaker-mms.properties;
# - loopback, not 0.0.0.0; and the java process it waits on is its own, not any MMS on
#   the host (it refuses to start when it sees two).
LAUNCHER = """\
import ctypes, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
import psutil
from sagemaker_inference import model_server as m
m.MMS_CONFIG_FILE = sys.argv[1]
generate = m._generate_mms_config_properties
m._generate_mms_config_properties = lambda env, handler=None: generate(
    env, handler).replace("0.0.0.0", "127.0.0.1")
def ours():
    for process in psutil.Process().children(recursive=True):
        try:
            if m.MMS_NAMESPACE in process.cmdline():
                return process
        except psutil.Error:
            pass
    raise Exception("mms model server was unsuccessfully started")
m._retrieve_mms_server_process = ours
m.start_model_server(handler_service=sys.argv[2])
"""


class MmsServed(Served):
    """One model served by AWS's stack, started as its containers start it (``LAUNCHER``),
    measured like any served model (eikit.bench.served): the launcher, java and MMS's
    Python workers are one process tree in a session of their own. ``base_dir`` holds
    ``model/model.pt`` (SAGEMAKER_BASE_DIR, as for eikit); a fresh one per start, since
    MMS refuses to start where its pid file names a live process."""

    def __init__(
        self, venv: Path, base_dir: Path, workers: int = 2, log: Optional[Path] = None
    ) -> None:
        command = [
            str(venv / "bin" / "python"),
            "-c",
            LAUNCHER,
            str(Path(base_dir) / "mms.properties"),
            MMS_HANDLER,
        ]
        env = mms_env(venv, Path(base_dir), workers)
        env["SAGEMAKER_MULTI_MODEL"] = "false"
        super().__init__(base_dir, command, env, log)

    def pick_port(self) -> int:
        return low_free_port()

    def config_text(self) -> str:
        """The MMS config the launcher wrote (empty before start)."""
        try:
            return (self.base_dir / "mms.properties").read_text()
        except OSError:
            return ""


def mms_workers_ready(url: str, model: str = "model") -> int:
    """Workers of ``model`` MMS lists as READY (its management API, on the same port
    under sagemaker-inference's config); 0 when it does not answer."""
    try:
        code, text = srv.http("GET", f"{url}/models/{model}", timeout=5.0)
    except OSError:
        return 0
    if code != 200:
        return 0
    workers = json.loads(text).get("workers", [])
    return sum(1 for worker in workers if worker.get("status") == "READY")
