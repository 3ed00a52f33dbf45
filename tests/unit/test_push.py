"""eikit.images.push: ECR calls against moto, a real push to a local registry."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import tarfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

pytest.importorskip("docker")
boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from docker.errors import ImageNotFound  # noqa: E402

from eikit.images import push  # noqa: E402
from eikit.images.push import (  # noqa: E402
    PushError,
    PushProgress,
    RegistryAuth,
    ecr_auth,
    ensure_repository,
    push_image,
    push_to_ecr,
    registry_host,
)

REGION = "us-west-2"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Fake credentials and moto's in-process ECR: nothing leaves the process."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        yield boto3.client("ecr", region_name=REGION)


@dataclass
class FakeAPI:
    """The few low-level client calls push makes, recorded."""

    images: List[str] = field(default_factory=lambda: ["eikit:pytorch-cpu"])
    logins: List[Dict[str, Any]] = field(default_factory=list)
    tagged: List[Any] = field(default_factory=list)
    pushes: List[Dict[str, Any]] = field(default_factory=list)

    def inspect_image(self, image: str) -> Dict[str, Any]:
        if image not in self.images:
            raise ImageNotFound("no such image: %s" % image)
        return {"Id": image}

    def login(self, **kwargs: Any) -> Dict[str, Any]:
        self.logins.append(kwargs)
        return {"Status": "Login Succeeded"}

    def tag(self, image: str, repository: str, tag: Optional[str] = None) -> bool:
        self.tagged.append((image, repository, tag))
        return True

    def push(self, repository: str, **kwargs: Any) -> Iterator[Dict[str, Any]]:
        self.pushes.append(dict(kwargs, repository=repository))
        return iter(
            [
                {"status": "The push refers to repository [%s]" % repository},
                {"status": "Preparing", "id": "aaa"},
                {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 1, "total": 10}},
                {"status": "Pushed", "id": "aaa"},
                {"status": "Layer already exists", "id": "bbb"},
                {"aux": {"Tag": kwargs["tag"], "Digest": "sha256:cafe", "Size": 529}},
            ]
        )

    def close(self) -> None:
        pass


# --- ECR (moto) -----------------------------------------------------------------------------


def test_ensure_repository_creates_once(aws: Any) -> None:
    uri = ensure_repository(aws, "eikit-pytorch")
    assert uri.endswith(".dkr.ecr.%s.amazonaws.com/eikit-pytorch" % REGION)
    assert ensure_repository(aws, "eikit-pytorch") == uri
    (repo,) = aws.describe_repositories()["repositories"]
    assert repo["repositoryName"] == "eikit-pytorch"


def test_ecr_auth_decodes_the_token(aws: Any) -> None:
    auth = ecr_auth(aws)
    assert auth.username == "AWS"
    assert auth.password
    assert auth.registry.endswith(".dkr.ecr.%s.amazonaws.com" % REGION)
    assert not auth.registry.startswith("https://")
    assert auth.auth_config == {
        "username": "AWS",
        "password": auth.password,
        "serveraddress": auth.registry,
    }


def test_push_to_ecr_creates_logs_in_and_pushes_every_tag(aws: Any) -> None:
    api = FakeAPI()
    results = push_to_ecr(
        "eikit:pytorch-cpu", "eikit-pytorch", REGION, ["2.13-cpu-py311", "latest"], api=api
    )  # type: ignore[arg-type]
    uri = aws.describe_repositories(repositoryNames=["eikit-pytorch"])["repositories"][0][
        "repositoryUri"
    ]
    (login,) = api.logins
    assert login["username"] == "AWS"
    assert login["registry"] == "https://" + uri.split("/")[0]
    assert api.tagged == [
        ("eikit:pytorch-cpu", uri, "2.13-cpu-py311"),
        ("eikit:pytorch-cpu", uri, "latest"),
    ]
    assert [p["tag"] for p in api.pushes] == ["2.13-cpu-py311", "latest"]
    assert all(p["auth_config"]["username"] == "AWS" for p in api.pushes)
    assert [r.reference for r in results] == [uri + ":2.13-cpu-py311", uri + ":latest"]
    assert results[0].digest == "sha256:cafe"


def test_push_without_source_uses_the_local_eikit_image_of_that_tag(aws: Any) -> None:
    api = FakeAPI(images=["eikit:pytorch-2.13-cpu-py311"])
    push_to_ecr(None, "team/serving", REGION, ["pytorch-2.13-cpu-py311"], api=api)  # type: ignore[arg-type]
    assert api.tagged[0][0] == "eikit:pytorch-2.13-cpu-py311"


def test_push_of_a_missing_image_says_to_build_it() -> None:
    with pytest.raises(PushError, match="eikit build"):
        push_image("eikit:nope", "127.0.0.1:5000/eikit", ["v1"], api=FakeAPI())  # type: ignore[arg-type]


def test_no_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # No moto (it supplies credentials); requests could only go to a closed loopback port.
    ecr = push.ecr_client(
        REGION, session=boto3.session.Session(), endpoint_url="http://127.0.0.1:9"
    )
    with pytest.raises(PushError, match="no AWS credentials"):
        ensure_repository(ecr, "eikit")


# --- the push stream ------------------------------------------------------------------------


def test_progress_raises_the_engine_error() -> None:
    progress = PushProgress("127.0.0.1:5000/x:y")
    progress.feed({"status": "Preparing", "id": "aaa"})
    with pytest.raises(PushError, match="denied: requested access"):
        progress.feed({"error": "denied: requested access to the resource is denied"})


def test_progress_tracks_layers_and_digest() -> None:
    progress = PushProgress("r:t")
    for chunk in FakeAPI().push("r", tag="t"):
        progress.feed(chunk)
    assert progress.layers == {"aaa": "Pushed", "bbb": "Layer already exists"}
    assert progress.sizes == {"aaa": 10}
    assert (progress.digest, progress.size) == ("sha256:cafe", 529)


@pytest.mark.parametrize(
    "url", ["127.0.0.1:5000", "http://127.0.0.1:5000", "https://127.0.0.1:5000/"]
)
def test_registry_host(url: str) -> None:
    assert registry_host(url) == "127.0.0.1:5000"


def test_registry_without_credentials_sends_no_auth() -> None:
    assert RegistryAuth("127.0.0.1:5000").auth_config is None


# --- a real push to a local registry (Debian's docker-registry) -------------------------


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


@pytest.mark.container
def test_push_to_a_local_registry(engine: Any, registry: str) -> None:
    name = "eikit-test-push-%s" % uuid.uuid4().hex[:8]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = name.encode()
        info = tarfile.TarInfo("name.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    engine.import_image_from_data(buffer.getvalue(), repository=name, tag="v1")
    try:
        results = push.push_to_registry(
            name + ":v1", "http://" + registry, name, ["v1", "latest"], api=engine
        )
        assert [r.reference for r in results] == [
            "%s/%s:v1" % (registry, name),
            "%s/%s:latest" % (registry, name),
        ]
        assert results[0].digest and results[0].digest == results[1].digest
        with urllib.request.urlopen("http://%s/v2/%s/tags/list" % (registry, name)) as reply:
            assert sorted(json.load(reply)["tags"]) == ["latest", "v1"]
    finally:
        for ref in (name + ":v1", "%s/%s:v1" % (registry, name), "%s/%s:latest" % (registry, name)):
            with contextlib.suppress(Exception):
                engine.remove_image(ref, force=True)
