"""Build an image from an ``ImageSpec`` with the Docker SDK's low-level API.

The engine's build stream becomes one progress line per Dockerfile step (its time, or
that it came from the cache); every line of the build log goes to DEBUG, or to ``echo``.
Builds use the host's network. A base image that is not on the engine is pulled first, with
progress (``eikit.images.pull``); with ``pull=False`` (``eikit build --no-pull``) nothing is
pulled and a missing base image fails the build before it starts
(``scripts/make-base-image`` makes one without a registry).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Union,
)

if TYPE_CHECKING:
    # Submodule imports: the repository's own docker/ folder would shadow the package name.
    from docker.api.client import APIClient

logger = logging.getLogger(__name__)

LOCAL_REPOSITORY = "eikit"
ENGINE_HINT = "start one with scripts/start-docker, or point DOCKER_HOST at a running engine"
BUILD_TIMEOUT_S = 3600.0

# The build context when it has no .dockerignore: never send a virtualenv, git or caches.
DEFAULT_EXCLUDES = (
    ".git",
    ".venv",
    "**/__pycache__",
    "**/*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "dist",
    "**/*.egg-info",
    "bench/results",
)

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_VAR = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")


class EngineUnavailable(RuntimeError):
    """No Docker engine answers (or the Docker SDK is missing)."""


class BuildError(RuntimeError):
    """The engine refused or failed the build; ``log_tail`` holds its last lines."""

    def __init__(self, message: str, log_tail: Iterable[str] = ()) -> None:
        self.log_tail = list(log_tail)
        if self.log_tail:
            message = "%s\n--- last lines of the build log ---\n%s" % (
                message,
                "\n".join(self.log_tail),
            )
        super().__init__(message)


class BuildableSpec(Protocol):
    """What ``build_image`` needs of ``eikit.images.matrix.ImageSpec``."""

    @property
    def dockerfile(self) -> Union[str, Path]: ...

    @property
    def context(self) -> Union[str, Path]: ...

    @property
    def build_args(self) -> Mapping[str, str]: ...

    @property
    def tag(self) -> str: ...


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: List[str]
    seconds: float
    steps: int
    cached_steps: int
    pulled: List[str] = field(default_factory=list)


def connect(timeout: Optional[float] = 60.0) -> APIClient:
    """A low-level client for the engine named by DOCKER_HOST (default: the local socket).

    Raises ``EngineUnavailable`` with what to do when none answers.
    """
    return open_engine("APIClient", timeout)


def open_engine(kind: str, timeout: Optional[float] = 60.0) -> Any:
    """``docker.APIClient`` or ``docker.DockerClient`` (by ``kind``), checked with a ping."""
    try:
        import docker
        from docker.utils import kwargs_from_env
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EngineUnavailable(
            "the Docker SDK for Python is missing: pip install 'eikit[images]'"
        ) from exc
    kwargs: Dict[str, Any] = kwargs_from_env()
    where = kwargs.get("base_url") or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = getattr(docker, kind)(version="auto", timeout=timeout, **kwargs)
        client.ping()
    except Exception as exc:  # DockerException, requests' errors, OSError: all mean "no engine"
        raise EngineUnavailable(
            "no Docker engine answers at %s (%s); %s" % (where, _first_line(exc), ENGINE_HINT)
        ) from exc
    return client


def engine_unavailable_reason() -> Optional[str]:
    """None when an engine answers, else why not (for test skips and ``--check``)."""
    try:
        connect(timeout=10).close()
    except EngineUnavailable as exc:
        return str(exc)
    return None


@dataclass
class BuildProgress:
    """Reads the legacy builder's JSON stream: steps, cache hits, the image id, the log tail."""

    echo: Optional[Callable[[str], None]] = None
    total: int = 0
    step: int = 0
    cached: int = 0
    image_id: Optional[str] = None
    tail: Deque[str] = field(default_factory=lambda: deque(maxlen=40))
    _partial: str = ""
    _step_text: str = ""
    _step_started: float = 0.0
    _step_cached: bool = False
    _step_open: bool = False

    def feed(self, chunk: Mapping[str, Any]) -> None:
        if "error" in chunk or "errorDetail" in chunk:
            self._flush()
            detail = chunk.get("errorDetail") or {}
            message = str(chunk.get("error") or detail.get("message") or "unknown error")
            where = " at step %d/%d (%s)" % (self.step, self.total, self._step_text)
            raise BuildError(
                "build failed%s: %s" % (where if self.step else "", message.strip()), self.tail
            )
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        text = chunk.get("stream") or chunk.get("status")
        if not text:
            return
        lines = (self._partial + str(text)).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def finish(self) -> None:
        self._flush()
        self._close_step()

    def _flush(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, ""
            self._line(partial)

    def _line(self, line: str) -> None:
        line = line.rstrip()
        if not line.strip():
            return
        self.tail.append(line)
        if self.echo is not None:
            self.echo(line)
        else:
            logger.debug("build: %s", line)
        match = _STEP.match(line)
        if match:
            self._close_step()
            self.step, self.total = int(match.group(1)), int(match.group(2))
            self._step_text = match.group(3).strip()
            self._step_started = time.monotonic()
            self._step_cached = False
            self._step_open = True
            logger.info("[%d/%d] %s", self.step, self.total, _shorten(self._step_text))
        elif line.strip() == "---> Using cache":
            self._step_cached = True
        elif line.startswith("Successfully built ") and not self.image_id:
            self.image_id = line.split()[-1]

    def _close_step(self) -> None:
        if not self._step_open:
            return
        self._step_open = False
        seconds = time.monotonic() - self._step_started
        if self._step_cached:
            self.cached += 1
        elif seconds >= 1.0:
            logger.info("[%d/%d] done in %.1f s", self.step, self.total, seconds)


def local_reference(tag: str) -> str:
    """``pytorch-2.13-cpu-py311`` -> ``eikit:pytorch-2.13-cpu-py311``; full names stay."""
    return tag if ":" in tag or "/" in tag else "%s:%s" % (LOCAL_REPOSITORY, tag)


def build_image(
    spec: BuildableSpec,
    tags: Optional[Iterable[str]] = None,
    *,
    client: Optional[APIClient] = None,
    nocache: bool = False,
    echo: Optional[Callable[[str], None]] = None,
    timeout: float = BUILD_TIMEOUT_S,
    pull: bool = True,
) -> BuildResult:
    """Build ``spec`` and tag the result ``eikit:<spec.tag>`` plus ``tags``.

    A base image missing from the engine is pulled first; ``pull=False`` never pulls and
    fails instead. ``echo`` receives every line of the pull and build logs (default: DEBUG
    log records).
    """
    all_tags = _unique([local_reference(spec.tag), *(tags or [])])
    context = Path(spec.context).resolve()
    dockerfile = Path(spec.dockerfile)
    if not dockerfile.is_absolute():
        dockerfile = context / dockerfile
    if not context.is_dir():
        raise BuildError("build context %s is not a directory" % context)
    if not dockerfile.is_file():
        raise BuildError("Dockerfile %s does not exist" % dockerfile)
    build_args = {str(k): str(v) for k, v in spec.build_args.items() if v is not None}

    own_client = client is None
    api = client if client is not None else connect(timeout=timeout)
    try:
        pulled = ensure_base_images(api, dockerfile, build_args, pull=pull, echo=echo)
        logger.info("building %s from %s (context %s)", all_tags[0], dockerfile, context)
        started = time.monotonic()
        progress = BuildProgress(echo=echo)
        archive, dockerfile_name = build_context(context, dockerfile)
        try:
            stream = api.build(
                fileobj=archive,
                custom_context=True,
                dockerfile=dockerfile_name,
                tag=all_tags[0],
                buildargs=build_args,
                network_mode="host",
                pull=False,
                rm=True,
                forcerm=True,
                nocache=nocache,
                decode=True,
                timeout=int(timeout),
            )
            for chunk in stream:
                progress.feed(chunk)
        except BuildError:
            raise
        except Exception as exc:  # APIError, a dropped connection, a read timeout
            message = "build of %s failed: %s" % (all_tags[0], exc)
            raise BuildError(message, progress.tail) from exc
        finally:
            archive.close()
        progress.finish()
        if not progress.image_id:
            raise BuildError("the engine ended the build without an image id", progress.tail)
        image_id = progress.image_id
        for extra in all_tags[1:]:
            repository, tag = split_tag(extra)
            api.tag(image_id, repository, tag)
        seconds = time.monotonic() - started
        logger.info(
            "built %s (%s) in %.1f s: %d steps, %d from cache",
            ", ".join(all_tags),
            image_id[:19],
            seconds,
            progress.total,
            progress.cached,
        )
        return BuildResult(image_id, all_tags, seconds, progress.total, progress.cached, pulled)
    finally:
        if own_client:
            api.close()


def context_excludes(context: Path) -> List[str]:
    """The context's .dockerignore patterns, or ``DEFAULT_EXCLUDES`` when it has none."""
    ignore = context / ".dockerignore"
    if not ignore.is_file():
        return list(DEFAULT_EXCLUDES)
    lines = (line.strip() for line in ignore.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def build_context(context: Path, dockerfile: Path) -> Tuple[IO[bytes], str]:
    """The context as an uncompressed tar (a temporary file) and the Dockerfile's name in it.

    A Dockerfile outside the context is added to the archive, as ``docker build -f`` does.
    """
    from docker.api.build import process_dockerfile
    from docker.utils.build import tar

    name, contents = process_dockerfile(str(dockerfile), str(context))
    archive: IO[bytes] = tar(
        str(context), exclude=context_excludes(context), dockerfile=(name, contents)
    )
    size = archive.seek(0, 2)
    archive.seek(0)
    logger.info("build context %s: %.1f MB", context, size / 1e6)
    return archive, name


def ensure_base_images(
    api: APIClient,
    dockerfile: Path,
    build_args: Mapping[str, str],
    *,
    pull: bool = True,
    echo: Optional[Callable[[str], None]] = None,
) -> List[str]:
    """Pull each FROM image the engine lacks (none with ``pull=False``); returns those pulled.

    Without ``pull`` a missing image fails here, before the build starts, naming it and how
    to make one; a failed pull fails here too (``BuildError`` from ``PullError``).
    """
    from docker.errors import ImageNotFound

    from eikit.images.pull import PullError, pull_image, registry_of

    pulled: List[str] = []
    for image in base_images(dockerfile.read_text(), build_args):
        try:
            api.inspect_image(image)
            continue
        except ImageNotFound:
            pass
        if not pull:
            raise BuildError(
                "base image %s is not on the engine, and --no-pull builds never pull it: "
                "make one without a registry (scripts/make-base-image %s), load it "
                "(docker load), or build without --no-pull to pull it from %s"
                % (image, image, registry_of(image))
            )
        try:
            pull_image(api, image, echo=echo)
        except PullError as exc:
            raise BuildError(str(exc)) from exc
        pulled.append(image)
    return pulled


def base_images(dockerfile_text: str, build_args: Mapping[str, str]) -> List[str]:
    """The external images a Dockerfile's FROM lines name, with ARG defaults substituted.

    Build stages and ``scratch`` are left out, and so is any name with a variable we cannot
    resolve.
    """
    args: Dict[str, str] = {}
    stages = set()
    images: List[str] = []
    seen_from = False
    for line in _instructions(dockerfile_text):
        parts = line.split()
        keyword = parts[0].upper()
        if keyword == "ARG" and not seen_from and len(parts) > 1:
            name, _, default = parts[1].partition("=")
            value = build_args.get(name, default.strip("\"'"))
            if value:
                args[name] = value
        elif keyword == "FROM" and len(parts) > 1:
            seen_from = True
            words = [p for p in parts[1:] if not p.startswith("--")]
            if not words:
                continue
            image = _substitute(words[0], args)
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            if image is None or image == "scratch" or image.lower() in stages:
                continue
            if image not in images:
                images.append(image)
    return images


def split_tag(reference: str) -> Tuple[str, Optional[str]]:
    """``name[:tag]`` -> (name, tag or None); a registry's ``host:port/`` is not a tag."""
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, None
    return name, tag


def _instructions(text: str) -> List[str]:
    lines: List[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def _substitute(word: str, args: Mapping[str, str]) -> Optional[str]:
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        name = match.group(1) or match.group(3)
        if name in args:
            return args[name]
        if match.group(2) is not None:
            return match.group(2)
        unresolved = True
        return ""

    value = _VAR.sub(replace, word)
    return None if unresolved or not value else value


def _unique(items: Iterable[str]) -> List[str]:
    out: List[str] = []
    for item in items:
        if item and item not in out:
            out.append(item)
    return out


def _shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
