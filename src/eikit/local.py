"""Local mode: lay out a SageMaker model tree from a user's folders and serve it.

The tree is built from symlinks, so large model files are never copied. A ``model.tar.gz``
(what training jobs produce) is extracted once, safely (``eikit.archive``). The work folder
holding the tree is eikit's alone: a marker file says so, and eikit removes only what it laid
out there, never a user's files.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional

from eikit import interrupts
from eikit.archive import extract_archive
from eikit.errors import ConfigurationError
from eikit.ping import wait_for_ping

log = logging.getLogger(__name__)

KILL_WAIT_S = 10.0  # for the exit after SIGKILL
PR_SET_PDEATHSIG = 1


def _archive_cache(archive: Path, work_dir: Path) -> Path:
    stat = archive.stat()
    key = hashlib.sha256(
        ("%s:%d:%d" % (archive.resolve(), stat.st_size, stat.st_mtime_ns)).encode()
    ).hexdigest()[:16]
    return work_dir / ("extracted-" + key)


def resolve_model_source(model: Path, work_dir: Path) -> Path:
    """A model folder as is, or a ``*.tar.gz`` extracted (once) under ``work_dir``."""
    if model.is_dir():
        return model.resolve()
    if model.is_file() and model.name.endswith((".tar.gz", ".tgz", ".tar")):
        target = _archive_cache(model, work_dir)
        if not target.is_dir():
            log.info("extracting %s", model)
            try:
                extract_archive(model, target)
            except ConfigurationError:
                if not target.is_dir():  # else another eikit extracted it meanwhile
                    raise
        return target
    raise ConfigurationError("--model-dir %s is neither a folder nor a model.tar.gz" % model)


WORK_MARKER = ".eikit-work-dir"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def prepare_work_dir(work: Path, sources: Iterable[Path], owned: bool = False) -> Optional[Path]:
    """Make ``work`` eikit's folder, or refuse it; returns the outermost folder created.

    Refused: a folder that is, holds or lies inside a model or code folder, and a non-empty
    folder without eikit's marker (unless ``owned``: eikit's own cache folder).
    """
    where = work.resolve()
    for source in sources:
        mine = source.resolve()
        if _inside(where, mine) or _inside(mine, where):
            raise ConfigurationError(
                "--work-dir %s must not be, hold or lie inside %s: eikit lays out its own "
                "files there; give a new or empty folder" % (work, source)
            )
    created = None
    if where.exists():
        if not where.is_dir():
            raise ConfigurationError("--work-dir %s is not a folder" % work)
        if not (where / WORK_MARKER).is_file() and any(where.iterdir()) and not owned:
            raise ConfigurationError(
                "--work-dir %s is not empty and was not made by eikit; give a new or empty "
                "folder (eikit replaces what it lays out there)" % work
            )
    else:
        created = where
        while not created.parent.exists():
            created = created.parent
        where.mkdir(parents=True)
    (where / WORK_MARKER).write_text(
        "Made by eikit local. It lays out model/ (links) and extracted-*/ here and removes\n"
        "nothing else.\n"
    )
    return created


def _remove_layout(tree: Path) -> None:
    """Remove a ``model/`` eikit laid out: a folder of symlinks, nothing else."""
    if tree.is_symlink():
        tree.unlink()
        return
    if not tree.exists():
        return
    strays = [e.name for e in tree.iterdir() if not e.is_symlink()] if tree.is_dir() else ["."]
    if strays:
        raise ConfigurationError(
            "%s holds %s, which eikit did not lay out; move it away or use another --work-dir"
            % (tree, ", ".join(sorted(strays)[:5]))
        )
    for entry in tree.iterdir():
        entry.unlink()
    try:
        tree.rmdir()
    except OSError as exc:  # someone wrote into it meanwhile: leave their files alone
        raise ConfigurationError("cannot replace %s: %s" % (tree, exc)) from None


def layout_model_tree(
    model: Path, code_dir: Optional[Path], dest: Path, owned: bool = False
) -> Path:
    """Make ``dest/model`` hold links to the model files (and ``code/``); returns ``dest``.

    ``dest`` is what ``SAGEMAKER_BASE_DIR`` points at; it must be new, empty, or a folder
    eikit laid out before (see ``prepare_work_dir``). A failure leaves no folder it created.
    """
    if code_dir is not None and not code_dir.is_dir():
        raise ConfigurationError("--code-dir %s is not a folder" % code_dir)
    created = prepare_work_dir(dest, [model] + ([code_dir] if code_dir else []), owned)
    try:
        source = resolve_model_source(model, dest)
        tree = dest / "model"
        _remove_layout(tree)
        tree.mkdir()
        for entry in sorted(source.iterdir()):
            if entry.name == "code" and code_dir is not None:
                continue
            (tree / entry.name).symlink_to(entry.resolve())
        if code_dir is not None:
            (tree / "code").symlink_to(code_dir.resolve())
    except BaseException:
        if created is not None:
            shutil.rmtree(str(created), ignore_errors=True)
        raise
    return dest


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_this_process() -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` that makes a child get SIGTERM when this process dies, SIGKILL
    included (Linux's PR_SET_PDEATHSIG); None where that is not available.

    Only from the main thread: the kernel signals the child when the *thread* that started
    it ends, and the main thread ends with the process."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # this process died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class ServerProcess:
    """``eikit serve`` as a child process on a loopback port, as SageMaker would run it.

    The child dies with this process (``die_with_this_process``); ``stop`` is bounded and
    logs each phase to ``eikit.stopping``.
    """

    def __init__(
        self,
        base_dir: Path,
        env: Optional[Dict[str, str]] = None,
        port: Optional[int] = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.base_dir = base_dir
        self.port = port or free_port(host)
        self.host = host
        self.url = "http://%s:%d" % (host, self.port)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.env.update(
            {
                "SAGEMAKER_BASE_DIR": str(base_dir),
                "SAGEMAKER_BIND_TO_PORT": str(self.port),
                "EIKIT_HOST": host,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.process: Optional[subprocess.Popen] = None

    def start(self, stdout: Any = None) -> ServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eikit", "serve"],
            env=self.env,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            preexec_fn=die_with_this_process(),
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> int:
        assert self.process is not None, "start() first"
        return wait_for_ping(self.url, time.monotonic() + timeout, self.process)

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        """SIGTERM, wait up to ``timeout`` s (cut short by a stop signal meanwhile, see
        ``eikit.interrupts``), then SIGKILL; returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with interrupts.stopping():
                self._terminate(process, timeout)
        return process.returncode

    def _terminate(self, process: subprocess.Popen, timeout: float) -> None:
        began = time.monotonic()
        interrupts.say(
            "stopping eikit serve (pid %d): SIGTERM sent, up to %.0f s to drain%s"
            % (process.pid, timeout, " (Ctrl-C again kills it)" if interrupts.handled() else "")
        )
        process.send_signal(signal.SIGTERM)
        while time.monotonic() - began < timeout and not interrupts.kill_requested():
            try:
                process.wait(0.1)
                break
            except subprocess.TimeoutExpired:
                continue
        if process.poll() is None:
            interrupts.say(
                "%s: killing eikit serve (pid %d)"
                % (
                    "stop signal again"
                    if interrupts.kill_requested()
                    else "still running after %.0f s" % (time.monotonic() - began),
                    process.pid,
                )
            )
            process.kill()
            try:
                process.wait(KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                interrupts.say("eikit serve (pid %d) has not exited after SIGKILL" % process.pid)
                return
        interrupts.say(
            "eikit serve (pid %d) exited with code %s after %.1f s"
            % (process.pid, process.returncode, time.monotonic() - began)
        )

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
