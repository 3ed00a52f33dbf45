"""Local mode: lay out a SageMaker model tree from a user's folders and serve it.

The tree is built from symlinks, so large model files are never copied. A ``model.tar.gz``
(what training jobs produce) is extracted once, refusing members that would land outside
the target or are links to outside it or devices.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Optional

from eikit.errors import ConfigurationError

log = logging.getLogger(__name__)


def _check_member(member: tarfile.TarInfo, dest: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise ConfigurationError("unsafe path in archive: %s" % member.name)
    if member.isdev() or member.isfifo():
        raise ConfigurationError("device or fifo in archive: %s" % member.name)
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = name.parent if member.issym() else PurePosixPath(".")
        resolved = os.path.normpath(str(base / target))
        if target.is_absolute() or resolved.startswith(".."):
            raise ConfigurationError(
                "link in archive points outside it: %s -> %s" % (member.name, member.linkname)
            )


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest`` safely (all members checked before any is written)."""
    try:
        with tarfile.open(str(archive), "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, dest)
            dest.mkdir(parents=True, exist_ok=True)
            # Python >= 3.12 (and patched older ones) also apply the stdlib's "data" filter.
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            for member in members:
                tar.extract(member, str(dest), set_attrs=False, **extra)  # type: ignore[arg-type]
    except tarfile.TarError as exc:
        raise ConfigurationError("cannot read %s: %s" % (archive, exc)) from exc
    return dest


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
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(str(partial), ignore_errors=True)
            log.info("extracting %s", model)
            extract_archive(model, partial)
            partial.rename(target)
        return target
    raise ConfigurationError("--model-dir %s is neither a folder nor a model.tar.gz" % model)


def layout_model_tree(model: Path, code_dir: Optional[Path], dest: Path) -> Path:
    """Make ``dest/model`` hold links to the model files (and ``code/``); returns ``dest``.

    ``dest`` is what ``SAGEMAKER_BASE_DIR`` points at.
    """
    source = resolve_model_source(model, dest)
    tree = dest / "model"
    if tree.is_symlink():
        tree.unlink()
    elif tree.exists():
        shutil.rmtree(str(tree))
    tree.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name == "code" and code_dir is not None:
            continue
        (tree / entry.name).symlink_to(entry.resolve())
    if code_dir is not None:
        if not code_dir.is_dir():
            raise ConfigurationError("--code-dir %s is not a folder" % code_dir)
        (tree / "code").symlink_to(code_dir.resolve())
    return dest


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_ping(url: str, deadline: float, process: Optional[subprocess.Popen] = None) -> int:
    """Poll ``url``/ping until 200; returns the last status seen (0: no answer).

    Stops early if ``process`` exits or the server says the model failed to load. Polls at a
    short interval, never a fixed sleep.
    """
    status = 0
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return status
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
            if b"model_load_failed" in error.read():
                return status
        except OSError:
            status = 0
        if status == 200:
            return status
        time.sleep(0.05)
    return status


class ServerProcess:
    """``eikit serve`` as a child process on a loopback port, as SageMaker would run it."""

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
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> int:
        assert self.process is not None, "start() first"
        return wait_for_ping(self.url, time.monotonic() + timeout, self.process)

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        """SIGTERM, wait, then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
