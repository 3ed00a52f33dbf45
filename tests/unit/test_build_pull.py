"""A build pulls a missing base image (with progress), or with --no-pull never does.

The stream and the error wording are checked without an engine; the pulls are real: a tiny
image is pushed to Debian's docker-registry on 127.0.0.1 (scripts/start-docker --registry),
removed from the engine, and pulled back by ``eikit build``.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import logging
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Mapping

import pytest

pytest.importorskip("docker")

from docker.errors import ImageNotFound  # noqa: E402

from eikit.images import matrix  # noqa: E402
from eikit.images.build import BuildError, build_image  # noqa: E402
from eikit.images.pull import (  # noqa: E402
    PullError,
    PullProgress,
    classify,
    pull_image,
    registry_of,
)


@dataclass(frozen=True)
class Spec:
    dockerfile: Path
    context: Path
    build_args: Mapping[str, str]
    tag: str


# --- names, messages, the stream (no engine) -------------------------------------------------


@pytest.mark.parametrize(
    "image, registry",
    [
        ("debian:bookworm", "docker.io"),
        ("python:3.11-slim-bookworm", "docker.io"),
        ("nvidia/cuda:13.0.0-base-ubuntu24.04", "docker.io"),
        ("127.0.0.1:5000/eikit-base:v1", "127.0.0.1:5000"),
        ("localhost/base", "localhost"),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/base:1",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        ),
        ("public.ecr.aws/docker/library/python@sha256:ab", "public.ecr.aws"),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert registry_of(image) == registry


# What Docker 20.10's engine answered here (and Docker Hub's well-known refusal).
@pytest.mark.parametrize(
    "message, status, kind",
    [
        (
            "manifest for 127.0.0.1:5000/x:v1 not found: manifest unknown: manifest unknown",
            404,
            "not_found",
        ),
        (
            'Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused',
            500,
            "unreachable",
        ),
        (
            'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: '
            "no such host",
            500,
            "unreachable",
        ),
        (
            'Head "http://127.0.0.1:5000/v2/secret/manifests/v1": no basic auth credentials',
            500,
            "auth",
        ),
        ("unauthorized", 500, "auth"),
        (
            "pull access denied for nope, repository does not exist or may require 'docker login'",
            404,
            "auth",
        ),
        (
            "denied: Your authorization token has expired. Reauthenticate and try again.",
            500,
            "auth",
        ),
        ("something else went wrong", 500, "failed"),
    ],
)
def test_classify(message: str, status: int, kind: str) -> None:
    assert classify(message, status) == kind


def test_progress_follows_layers_and_keeps_the_digest() -> None:
    lines: List[str] = []
    progress = PullProgress("127.0.0.1:5000/base:v1", echo=lines.append)
    for chunk in [
        {"status": "Pulling from base", "id": "v1"},
        {"status": "Pulling fs layer", "id": "aaa"},
        {"status": "Already exists", "id": "bbb"},
        {"status": "Downloading", "progressDetail": {"current": 50, "total": 100}, "id": "aaa"},
        {"status": "Verifying Checksum", "id": "aaa"},
        {"status": "Download complete", "id": "aaa"},
        {"status": "Extracting", "progressDetail": {"current": 10, "total": 100}, "id": "aaa"},
        {"status": "Pull complete", "id": "aaa"},
        {"status": "Digest: sha256:cafe"},
        {"status": "Status: Downloaded newer image for 127.0.0.1:5000/base:v1"},
    ]:
        progress.feed(chunk)
    assert progress.layers == {"aaa": "Pull complete", "bbb": "Already exists"}
    assert progress.received == {"aaa": 100}
    assert progress.digest == "sha256:cafe"
    assert lines == [
        "v1: Pulling from base",
        "aaa: Pulling fs layer",
        "bbb: Already exists",
        "aaa: Download complete",
        "aaa: Pull complete",
        "Digest: sha256:cafe",
        "Status: Downloaded newer image for 127.0.0.1:5000/base:v1",
    ]


def test_progress_raises_a_stream_error_naming_image_and_registry() -> None:
    progress = PullProgress("127.0.0.1:5000/base:v1")
    with pytest.raises(PullError) as info:
        progress.feed({"errorDetail": {"message": "unauthorized: authentication required"}})
    assert info.value.kind == "auth"
    assert info.value.registry == "127.0.0.1:5000"
    assert "cannot pull base image 127.0.0.1:5000/base:v1 from 127.0.0.1:5000" in str(info.value)


def test_cli_passes_no_pull_to_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from eikit.cli import main
    from eikit.images import build

    seen: List[bool] = []

    def fake_build(spec: Any, tags: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["pull"])
        raise BuildError("stop here")

    monkeypatch.setattr(build, "build_image", fake_build)
    base = ["build", "--framework", "pytorch", "--target", "cpu", "-q"]
    assert main(base) == 1
    assert main(base + ["--no-pull"]) == 1
    assert seen == [True, False]


# --- real pulls from a local registry (needs an engine) --------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``docker-registry`` on a free 127.0.0.1 port (scripts/start-docker --registry)."""
    binary = shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )
    if binary is None:
        pytest.skip("docker-registry is not installed (scripts/start-docker --registry)")
    from eikit.local import free_port

    root = tmp_path_factory.mktemp("registry")
    address = "127.0.0.1:%d" % free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        "    rootdirectory: %s\nhttp:\n  addr: %s\n" % (root / "data", address)
    )
    log = open(root / "registry.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen("http://%s/v2/" % address, timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("docker-registry did not start: %s" % (root / "registry.log"))
            time.sleep(0.05)
    yield address
    process.terminate()
    process.wait(10)
    log.close()


def _gone(engine: Any, image: str) -> bool:
    try:
        engine.inspect_image(image)
    except ImageNotFound:
        return True
    return False


@pytest.fixture
def remote_base(engine: Any, registry: str) -> Iterator[str]:
    """A tiny image (one file, ``docker import``) in the registry and not on the engine."""
    name = "eikit-test-base-%s" % uuid.uuid4().hex[:8]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = name.encode()
        info = tarfile.TarInfo("base.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    remote = "%s/%s:v1" % (registry, name)
    engine.import_image_from_data(buffer.getvalue(), repository=name, tag="v1")
    try:
        engine.tag(name + ":v1", "%s/%s" % (registry, name), "v1")
        for chunk in engine.push("%s/%s" % (registry, name), tag="v1", stream=True, decode=True):
            assert "error" not in chunk, chunk
        for ref in (remote, name + ":v1"):
            engine.remove_image(ref, force=True)
        assert _gone(engine, remote)
        yield remote
    finally:
        for ref in (remote, name + ":v1"):
            with contextlib.suppress(Exception):
                engine.remove_image(ref, force=True)


def _tiny_spec(tmp_path: Path, base: str, tag: str) -> Spec:
    (tmp_path / "payload.txt").write_text("payload\n")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE_IMAGE=missing:image\nFROM ${BASE_IMAGE}\nCOPY payload.txt /payload.txt\n"
    )
    return Spec(tmp_path / "Dockerfile", tmp_path, {"BASE_IMAGE": base}, tag)


@pytest.mark.container
def test_build_pulls_the_missing_base_image_with_progress(
    engine: Any, remote_base: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tag = "eikit-test-pulled-%s:v1" % uuid.uuid4().hex[:8]
    spec = _tiny_spec(tmp_path, remote_base, tag)
    lines: List[str] = []
    caplog.set_level(logging.INFO, logger="eikit.images")
    try:
        result = build_image(spec, client=engine, echo=lines.append)
        assert result.pulled == [remote_base]
        assert not _gone(engine, remote_base)
        assert any(line.endswith(": Pull complete") for line in lines)
        assert "Status: Downloaded newer image for %s" % remote_base in lines
        assert any(line.startswith("Step 3/3 : COPY") for line in lines)
        assert result.steps == 3
        messages = [record.getMessage() for record in caplog.records]
        assert any(m.startswith("pulling %s from 127.0.0.1:" % remote_base) for m in messages)
        assert any(m.startswith("pulled %s@sha256:" % remote_base) for m in messages)
        built = engine.inspect_image(tag)
        base = engine.inspect_image(remote_base)
        assert built["RootFS"]["Layers"][0] == base["RootFS"]["Layers"][0]
        again = build_image(spec, client=engine, echo=lines.append)
        assert again.pulled == []  # on the engine now
    finally:
        with contextlib.suppress(Exception):
            engine.remove_image(tag, force=True)


@pytest.mark.container
def test_no_pull_fails_clearly_and_pulls_nothing(
    engine: Any, remote_base: str, tmp_path: Path
) -> None:
    spec = _tiny_spec(tmp_path, remote_base, "eikit-test-never-built:v1")
    with pytest.raises(BuildError) as info:
        build_image(spec, client=engine, pull=False)
    text = str(info.value)
    assert "base image %s is not on the engine" % remote_base in text
    assert "scripts/make-base-image %s" % remote_base in text
    assert _gone(engine, remote_base)
    assert _gone(engine, "eikit-test-never-built:v1")


@pytest.mark.container
def test_cli_build_pulls_by_default_and_not_with_no_pull(
    engine: Any,
    remote_base: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from eikit.cli import main

    argv = ["build", "--framework", "pytorch", "--target", "cpu", "--base-image", remote_base]
    # --no-pull with the real pytorch Dockerfile: stops before the build, pulls nothing.
    assert main(argv + ["--no-pull"]) == 1
    err = capsys.readouterr().err
    assert "eikit build: error: base image %s is not on the engine" % remote_base in err
    assert "make-base-image" in err
    assert _gone(engine, remote_base)

    # By default: pulled, then built (a tiny Dockerfile stands in for the framework's).
    tag = "eikit-test-cli-%s:v1" % uuid.uuid4().hex[:8]
    asked: List[Any] = []

    def tiny_spec(framework: str, target: str, **kwargs: Any) -> Spec:
        asked.append((framework, target, kwargs["base_image"]))
        return _tiny_spec(tmp_path, kwargs["base_image"], tag)

    monkeypatch.setattr(matrix, "image_spec", tiny_spec)
    try:
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert asked == [("pytorch", "cpu", remote_base)]
        assert "built %s" % tag in out and "; pulled %s" % remote_base in out
        assert not _gone(engine, remote_base) and not _gone(engine, tag)
    finally:
        with contextlib.suppress(Exception):
            engine.remove_image(tag, force=True)


@pytest.mark.container
def test_pull_of_a_missing_tag_says_not_found(engine: Any, registry: str) -> None:
    image = "%s/eikit-test-absent-%s:v1" % (registry, uuid.uuid4().hex[:8])
    with pytest.raises(PullError) as info:
        pull_image(engine, image)
    assert info.value.kind == "not_found"
    assert "cannot pull base image %s from %s" % (image, registry) in str(info.value)
    assert "%s has no image %s" % (registry, image) in str(info.value)


@pytest.mark.container
def test_pull_from_a_closed_port_says_unreachable(engine: Any) -> None:
    from eikit.local import free_port

    registry = "127.0.0.1:%d" % free_port()  # nothing listens there
    with pytest.raises(PullError) as info:
        pull_image(engine, registry + "/base:v1")
    assert info.value.kind == "unreachable"
    assert "the engine cannot reach %s" % registry in str(info.value)
    assert "--no-pull" in str(info.value)


class _LoginRequired(http.server.BaseHTTPRequestHandler):
    """A registry that wants credentials for everything (Basic auth, never satisfied)."""

    def do_GET(self) -> None:
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="eikit-test"')
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.container
def test_pull_refused_by_the_registry_says_log_in(engine: Any) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LoginRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    registry = "127.0.0.1:%d" % server.server_address[1]
    try:
        with pytest.raises(PullError) as info:
            pull_image(engine, registry + "/private:v1")
        assert info.value.kind == "auth"
        assert "docker login %s" % registry in str(info.value)
        with pytest.raises(PullError) as wrong:
            pull_image(
                engine, registry + "/private:v1", auth_config={"username": "u", "password": "p"}
            )
        assert wrong.value.kind == "auth"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("offline", [False, True])
def test_build_image_script_adds_no_pull_only_offline(tmp_path: Path, offline: bool) -> None:
    """scripts/build-image --offline reaches no registry: it passes --no-pull to eikit build."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "scripts").mkdir()
    shutil.copy(root / "scripts" / "build-image", tmp_path / "scripts" / "build-image")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    for path in (tmp_path / "scripts" / "make-wheelhouse", tmp_path / ".venv" / "bin" / "eikit"):
        path.write_text('#!/bin/sh\necho "$(basename "$0") $*" >> %s\n' % calls)
        path.chmod(0o755)
    argv = [str(tmp_path / "scripts" / "build-image"), "--framework", "pytorch", "--target", "cpu"]
    done = subprocess.run(
        argv + (["--offline"] if offline else []), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    eikit = [line.split() for line in calls.read_text().splitlines() if line.startswith("eikit ")]
    assert len(eikit) == 1
    assert ("--no-pull" in eikit[0]) is offline
    assert ("--wheelhouse" in eikit[0]) is offline
