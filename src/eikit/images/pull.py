"""Pull an image (a build's missing base image) with progress and errors that say what to do.

The engine pulls, with the credentials ``docker login`` stored (the Docker SDK reads
``~/.docker/config.json`` and its credential helpers, as ``docker pull`` does). A failure
names the image and the registry, and says whether the registry refused the credentials,
has no such image, or could not be reached.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional

if TYPE_CHECKING:
    from docker.api.client import APIClient

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0
OFFLINE_HINT = (
    "or build without a registry: scripts/make-base-image eikit-base:bookworm, then "
    "eikit build --no-pull --base-image eikit-base:bookworm"
)

# Lower-case fragments of the engine's messages, by cause. "pull access denied" is Docker
# Hub's answer both for a private repository and for one that does not exist.
_AUTH = (
    "unauthorized",
    "authentication required",
    "no basic auth credentials",
    "denied",
    "authorization token has expired",
    "incorrect username or password",
)
_NOT_FOUND = ("not found", "manifest unknown", "name unknown", "does not exist")
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "dial tcp",
    "i/o timeout",
    "timeout exceeded",
    "tls handshake",
    "network is unreachable",
    "no route to host",
    "connection reset",
    "server gave http response to https client",
    "certificate",
)


class PullError(RuntimeError):
    """A pull failed. ``kind``: ``auth``, ``not_found``, ``unreachable`` or ``failed``."""

    def __init__(self, message: str, image: str, registry: str, kind: str) -> None:
        super().__init__(message)
        self.image = image
        self.registry = registry
        self.kind = kind


@dataclass(frozen=True)
class PullResult:
    image: str
    registry: str
    digest: Optional[str]
    layers: int
    downloaded_bytes: int
    seconds: float


def registry_of(image: str) -> str:
    """The registry an image name points at, as the engine reads it (``docker.io`` by default)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def classify(message: str, status_code: Optional[int] = None) -> str:
    """``auth``, ``not_found``, ``unreachable`` or ``failed``, from the engine's message."""
    text = message.lower()
    if any(part in text for part in _AUTH) or status_code in (401, 403):
        return "auth"
    if any(part in text for part in _UNREACHABLE):
        return "unreachable"
    if any(part in text for part in _NOT_FOUND) or status_code == 404:
        return "not_found"
    return "failed"


def pull_error(image: str, message: str, status_code: Optional[int] = None) -> PullError:
    """A ``PullError`` whose message names the image and registry and says what to do."""
    registry = registry_of(image)
    kind = classify(message, status_code)
    if kind == "auth":
        hint = (
            "%s refused access (no or wrong credentials, or no such repository): log the "
            "engine in with `docker login %s` (ECR: `aws ecr get-login-password | docker "
            "login --username AWS --password-stdin %s`)" % (registry, registry, registry)
        )
    elif kind == "not_found":
        hint = "%s has no image %s: check the name and tag, or pass --base-image" % (
            registry,
            image,
        )
    elif kind == "unreachable":
        hint = "the engine cannot reach %s: check its network and proxy settings, %s" % (
            registry,
            OFFLINE_HINT,
        )
    else:
        hint = OFFLINE_HINT
    return PullError(
        "cannot pull base image %s from %s: %s; %s" % (image, registry, message.strip(), hint),
        image,
        registry,
        kind,
    )


@dataclass
class PullProgress:
    """Reads the engine's pull stream: a line per finished layer, a heartbeat, the digest."""

    image: str
    echo: Optional[Callable[[str], None]] = None
    layers: Dict[str, str] = field(default_factory=dict)
    sizes: Dict[str, int] = field(default_factory=dict)
    received: Dict[str, int] = field(default_factory=dict)
    digest: Optional[str] = None
    _last_beat: float = field(default_factory=time.monotonic)

    def feed(self, chunk: Mapping[str, Any]) -> None:
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = str(chunk.get("error") or detail.get("message") or "unknown error")
            raise pull_error(self.image, message)
        status = str(chunk.get("status") or "").strip()
        if not status:
            return
        layer = chunk.get("id")
        if not layer or status.startswith("Pulling from"):
            # "Pulling from repo", "Digest: sha256:...", "Status: Downloaded newer image ..."
            if status.startswith("Digest: "):
                self.digest = status[len("Digest: ") :].strip()
            self._say("%s: %s" % (layer, status) if layer else status)
            return
        layer = str(layer)
        detail = chunk.get("progressDetail") or {}
        if status == "Downloading" and detail.get("total"):
            self.sizes[layer] = int(detail["total"])
            self.received[layer] = int(detail.get("current") or 0)
        if status in ("Downloading", "Extracting", "Waiting", "Verifying Checksum"):
            self.layers[layer] = status
            self._heartbeat()
            return
        self.layers[layer] = status
        if status == "Download complete" and layer in self.sizes:
            self.received[layer] = self.sizes[layer]
        self._say("%s: %s" % (layer, status))
        if _is_done(status):
            done = sum(1 for s in self.layers.values() if _is_done(s))
            logger.info(
                "%s: layer %s: %s (%d/%d)",
                self.image,
                layer,
                status[0].lower() + status[1:],
                done,
                len(self.layers),
            )

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)
        else:
            logger.debug("pull %s: %s", self.image, line)

    def _heartbeat(self) -> None:
        """A line every few seconds while big layers download."""
        now = time.monotonic()
        if now - self._last_beat < PROGRESS_EVERY_S:
            return
        self._last_beat = now
        logger.info(
            "%s: %.0f of %.0f MB downloaded",
            self.image,
            sum(self.received.values()) / 1e6,
            sum(self.sizes.values()) / 1e6,
        )


def _is_done(status: str) -> bool:
    return status in ("Pull complete", "Already exists")


def pull_image(
    api: APIClient,
    image: str,
    *,
    echo: Optional[Callable[[str], None]] = None,
    auth_config: Optional[Mapping[str, str]] = None,
) -> PullResult:
    """Pull ``image`` (``name[:tag]`` or ``name@digest``; no tag means ``latest``).

    ``echo`` receives every status line (default: DEBUG log records); layers that finish
    and a heartbeat go to INFO. Raises ``PullError``.
    """
    registry = registry_of(image)
    logger.info("pulling %s from %s", image, registry)
    started = time.monotonic()
    progress = PullProgress(image, echo=echo)
    try:
        stream = api.pull(
            image,
            stream=True,
            decode=True,
            auth_config=dict(auth_config) if auth_config else None,
        )
        for chunk in stream:
            progress.feed(chunk)
    except PullError:
        raise
    except Exception as exc:  # APIError (the engine's answer), a dropped connection
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise pull_error(image, str(explanation), getattr(exc, "status_code", None)) from exc
    seconds = time.monotonic() - started
    downloaded = sum(progress.received.values())
    logger.info(
        "pulled %s%s in %.1f s (%d layers, %.1f MB downloaded)",
        image,
        "@" + progress.digest if progress.digest and "@" not in image else "",
        seconds,
        len(progress.layers),
        downloaded / 1e6,
    )
    return PullResult(image, registry, progress.digest, len(progress.layers), downloaded, seconds)
