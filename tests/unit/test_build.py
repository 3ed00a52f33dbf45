"""eikit.images.build: the build stream, FROM resolution, tagging, engine errors."""

from __future__ import annotations

import contextlib
import io
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping

import pytest

from eikit.images import build
from eikit.images.build import (
    BuildError,
    BuildProgress,
    EngineUnavailable,
    base_images,
    build_image,
    split_tag,
)

pytest.importorskip("docker")

from docker.errors import APIError, ImageNotFound  # noqa: E402


@dataclass(frozen=True)
class Spec:
    dockerfile: Path
    context: Path
    build_args: Mapping[str, str]
    tag: str


# --- the build stream -----------------------------------------------------------------------


def test_progress_counts_steps_cache_hits_and_image_id() -> None:
    lines: List[str] = []
    progress = BuildProgress(echo=lines.append)
    for chunk in [
        {"stream": "Step 1/3 : FROM base\n"},
        {"stream": " ---> 1234\n"},
        {"stream": "Step 2/3 : RUN pip install x\n ---> Using cache\n ---> 5678\n"},
        {"stream": "Step 3/3 : COPY . /src\n"},
        {"stream": " ---> Running in abc\nhalf a "},
        {"stream": "line\n"},
        {"aux": {"ID": "sha256:feedbeef"}},
        {"stream": "Successfully built feedbeef\n"},
    ]:
        progress.feed(chunk)
    progress.finish()
    assert (progress.step, progress.total, progress.cached) == (3, 3, 1)
    assert progress.image_id == "sha256:feedbeef"
    assert "half a line" in lines


def test_progress_takes_the_id_from_the_last_line_without_aux() -> None:
    progress = BuildProgress(echo=lambda line: None)
    progress.feed({"stream": "Successfully built 0123abcd\n"})
    assert progress.image_id == "0123abcd"


def test_progress_error_names_the_step_and_keeps_the_log_tail() -> None:
    progress = BuildProgress(echo=lambda line: None)
    progress.feed({"stream": "Step 2/5 : RUN false\n ---> Running in x\noops from the step\n"})
    with pytest.raises(BuildError) as info:
        progress.feed(
            {
                "error": "The command '/bin/sh -c false' returned a non-zero code: 1",
                "errorDetail": {"code": 1, "message": "returned a non-zero code: 1"},
            }
        )
    text = str(info.value)
    assert "step 2/5 (RUN false)" in text
    assert "non-zero code: 1" in text
    assert "oops from the step" in info.value.log_tail


# --- FROM lines -------------------------------------------------------------------------------


DOCKERFILE = """\
# syntax comment
ARG BASE_IMAGE=debian:bookworm-slim
ARG TARGET=cpu
FROM ${BASE_IMAGE} AS base
RUN echo hi \\
    && echo there
FROM --platform=linux/amd64 base AS runtime
FROM scratch
FROM $UNKNOWN
FROM other:${TARGET:-gpu}
"""


def test_base_images_substitutes_arg_defaults_and_skips_stages() -> None:
    assert base_images(DOCKERFILE, {}) == ["debian:bookworm-slim", "other:cpu"]


def test_base_images_prefers_build_args() -> None:
    found = base_images(DOCKERFILE, {"BASE_IMAGE": "eikit-base:bookworm", "TARGET": "neuron"})
    assert found == ["eikit-base:bookworm", "other:neuron"]


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("eikit:pytorch-2.13-cpu-py311", ("eikit", "pytorch-2.13-cpu-py311")),
        ("eikit", ("eikit", None)),
        ("127.0.0.1:5000/eikit", ("127.0.0.1:5000/eikit", None)),
        ("127.0.0.1:5000/eikit:v1", ("127.0.0.1:5000/eikit", "v1")),
    ],
)
def test_split_tag(reference: str, expected: Any) -> None:
    assert split_tag(reference) == expected


# --- build_image against a fake engine ------------------------------------------------------


@dataclass
class FakeAPI:
    images: List[str] = field(default_factory=lambda: ["eikit-base:bookworm"])
    stream: List[Dict[str, Any]] = field(default_factory=list)
    builds: List[Dict[str, Any]] = field(default_factory=list)
    tags: List[Any] = field(default_factory=list)
    pulls: List[str] = field(default_factory=list)
    pull_stream: List[Dict[str, Any]] = field(default_factory=list)
    pull_raises: Any = None
    calls: List[str] = field(default_factory=list)
    closed: bool = False

    def inspect_image(self, image: str) -> Dict[str, Any]:
        if image not in self.images:
            raise ImageNotFound("no such image: %s" % image)
        return {"Id": image}

    def build(self, **kwargs: Any) -> Iterator[Dict[str, Any]]:
        self.calls.append("build")
        self.builds.append(kwargs)
        return iter(self.stream)

    def pull(self, image: str, **kwargs: Any) -> Iterator[Dict[str, Any]]:
        self.calls.append("pull")
        self.pulls.append(image)
        if self.pull_raises is not None:
            raise self.pull_raises
        assert kwargs["stream"] and kwargs["decode"]

        def stream() -> Iterator[Dict[str, Any]]:
            yield from self.pull_stream
            if not any("error" in chunk for chunk in self.pull_stream):
                self.images.append(image)

        return stream()

    def tag(self, image: str, repository: str, tag: Any = None) -> bool:
        self.tags.append((image, repository, tag))
        return True

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    (tmp_path / "Dockerfile").write_text("ARG BASE_IMAGE=debian:bookworm\nFROM ${BASE_IMAGE}\n")
    return Spec(
        tmp_path / "Dockerfile",
        tmp_path,
        {"BASE_IMAGE": "eikit-base:bookworm", "TARGET": "cpu"},
        "pytorch-cpu",
    )


def test_build_image_uses_host_network_and_adds_tags(spec: Spec) -> None:
    api = FakeAPI(
        stream=[
            {"stream": "Step 1/1 : FROM eikit-base:bookworm\n ---> abc\n"},
            {"aux": {"ID": "sha256:0123456789abcdef"}},
        ]
    )
    result = build_image(spec, ["eikit:latest", "eikit:pytorch-cpu"], client=api)  # type: ignore[arg-type]
    (call,) = api.builds
    assert call["network_mode"] == "host"
    assert call["pull"] is False
    assert call["tag"] == "eikit:pytorch-cpu"
    assert call["buildargs"] == {"BASE_IMAGE": "eikit-base:bookworm", "TARGET": "cpu"}
    assert api.tags == [("sha256:0123456789abcdef", "eikit", "latest")]
    assert result.tags == ["eikit:pytorch-cpu", "eikit:latest"]
    assert result.image_id == "sha256:0123456789abcdef"
    assert (result.steps, result.cached_steps) == (1, 0)
    assert not api.closed  # a client passed in stays open
    assert api.pulls == [] and result.pulled == []  # the base image is on the engine


PULL_STREAM = [
    {"status": "Pulling from library/debian", "id": "bookworm"},
    {"status": "Pulling fs layer", "id": "aaa"},
    {"status": "Downloading", "progressDetail": {"current": 5, "total": 10}, "id": "aaa"},
    {"status": "Download complete", "id": "aaa"},
    {"status": "Pull complete", "id": "aaa"},
    {"status": "Digest: sha256:beef"},
    {"status": "Status: Downloaded newer image for debian:bookworm"},
]


def test_build_image_pulls_a_missing_base_image_first(spec: Spec) -> None:
    api = FakeAPI(
        images=[],
        pull_stream=PULL_STREAM,
        stream=[{"stream": "Step 1/1 : FROM debian:bookworm\n"}, {"aux": {"ID": "sha256:0a"}}],
    )
    lines: List[str] = []
    plain = Spec(spec.dockerfile, spec.context, {}, "pytorch-cpu")  # FROM the ARG default
    result = build_image(plain, client=api, echo=lines.append)  # type: ignore[arg-type]
    assert api.calls == ["pull", "build"]
    assert api.pulls == ["debian:bookworm"]
    assert result.pulled == ["debian:bookworm"]
    assert api.builds[0]["pull"] is False  # pulled once, by us: the engine does not re-pull
    assert "aaa: Pull complete" in lines
    assert "Status: Downloaded newer image for debian:bookworm" in lines


def test_build_image_without_pull_fails_early_and_pulls_nothing(spec: Spec) -> None:
    api = FakeAPI(images=[])
    with pytest.raises(BuildError, match="make-base-image eikit-base:bookworm") as info:
        build_image(spec, client=api, pull=False)  # type: ignore[arg-type]
    assert "--no-pull" in str(info.value)
    assert api.calls == []


def test_build_image_reports_a_failed_pull_with_image_and_registry(spec: Spec) -> None:
    api = FakeAPI(
        images=[],
        pull_stream=[
            {"status": "Pulling from team/base", "id": "v1"},
            {"error": "unauthorized: authentication required"},
        ],
    )
    team = Spec(spec.dockerfile, spec.context, {"BASE_IMAGE": "reg.example:5000/team/base:v1"}, "x")
    with pytest.raises(BuildError) as info:
        build_image(team, client=api)  # type: ignore[arg-type]
    text = str(info.value)
    assert "cannot pull base image reg.example:5000/team/base:v1 from reg.example:5000" in text
    assert "docker login reg.example:5000" in text
    assert api.builds == []


def test_build_image_reports_an_engine_refusal_to_pull(spec: Spec) -> None:
    response = type("Response", (), {"status_code": 404, "reason": "Not Found"})()
    refusal = APIError(
        "404 Client Error", response, explanation="manifest for debian:nope not found"
    )
    api = FakeAPI(images=[], pull_raises=refusal)
    nope = Spec(spec.dockerfile, spec.context, {"BASE_IMAGE": "debian:nope"}, "x")
    with pytest.raises(BuildError, match="docker.io has no image debian:nope"):
        build_image(nope, client=api)  # type: ignore[arg-type]
    assert api.builds == []


def test_build_image_reports_a_failed_step(spec: Spec) -> None:
    api = FakeAPI(
        stream=[
            {"stream": "Step 1/2 : FROM eikit-base:bookworm\n"},
            {"stream": "Step 2/2 : RUN false\n"},
            {"error": "returned a non-zero code: 1"},
        ]
    )
    with pytest.raises(BuildError, match="at step 2/2"):
        build_image(spec, client=api)  # type: ignore[arg-type]


def test_build_image_checks_its_inputs(tmp_path: Path) -> None:
    missing = Spec(tmp_path / "nope" / "Dockerfile", tmp_path, {}, "x:y")
    with pytest.raises(BuildError, match="does not exist"):
        build_image(missing, client=FakeAPI())  # type: ignore[arg-type]


def test_connect_explains_how_to_start_an_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix://%s" % (tmp_path / "no.sock"))
    with pytest.raises(EngineUnavailable, match="scripts/start-docker") as info:
        build.connect(timeout=2)
    assert "no.sock" in str(info.value)
    assert build.engine_unavailable_reason() is not None


# --- a real build (needs an engine; no base image needed) -------------------------------


def tiny_image(api: Any, name: str) -> str:
    """An image made with ``docker import`` from one text file: nothing to pull or run."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    api.import_image_from_data(buffer.getvalue(), repository=name, tag="base")
    return "%s:base" % name


@pytest.mark.container
def test_real_build_streams_steps_and_caches(engine: Any, tmp_path: Path) -> None:
    name = "eikit-test-build-%s" % uuid.uuid4().hex[:8]
    base = tiny_image(engine, name)
    (tmp_path / "payload.txt").write_text("payload\n")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE_IMAGE=missing:image\nFROM ${BASE_IMAGE}\nARG TARGET\n"
        'LABEL com.example.target="${TARGET}"\nCOPY payload.txt /payload.txt\n'
    )
    spec = Spec(
        tmp_path / "Dockerfile", tmp_path, {"BASE_IMAGE": base, "TARGET": "cpu"}, name + ":v1"
    )
    lines: List[str] = []
    try:
        first = build_image(spec, [name + ":also"], client=engine, echo=lines.append)
        again = build_image(spec, client=engine, echo=lines.append)
        assert first.steps == again.steps == 5
        assert again.cached_steps >= 3
        assert again.image_id == first.image_id
        attrs = engine.inspect_image(name + ":also")
        assert attrs["Config"]["Labels"]["com.example.target"] == "cpu"
        assert any(line.startswith("Step 5/5 : COPY") for line in lines)
    finally:
        for ref in (name + ":v1", name + ":also", base):
            with contextlib.suppress(Exception):
                engine.remove_image(ref, force=True)
