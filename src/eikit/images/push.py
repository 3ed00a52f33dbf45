"""Push images to Amazon ECR (or any registry) with progress.

ECR: create the repository when missing, get an authorization token, log the engine in,
push every tag. Any other registry (``--registry 127.0.0.1:5000``, for tests): push, with
credentials only when given.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional

from eikit.images.build import LOCAL_REPOSITORY, connect, split_tag

if TYPE_CHECKING:
    from docker.api.client import APIClient

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


class PushError(RuntimeError):
    """A push, a login or an ECR call failed; the message says which and why."""


@dataclass(frozen=True)
class RegistryAuth:
    """Where to push and, for registries that need them, the credentials."""

    registry: str
    username: Optional[str] = None
    password: Optional[str] = None

    @property
    def auth_config(self) -> Optional[Dict[str, str]]:
        if self.username is None:
            return None
        return {
            "username": self.username,
            "password": self.password or "",
            "serveraddress": self.registry,
        }


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: Optional[str]
    size: Optional[int]
    seconds: float


def registry_host(url: str) -> str:
    """``https://host:port/`` or ``host:port`` -> ``host:port`` (what image names start with)."""
    host = url.strip()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    return host.rstrip("/")


# --- ECR ---------------------------------------------------------------------------------


def ecr_client(
    region: Optional[str], session: Any = None, endpoint_url: Optional[str] = None
) -> Any:
    """A boto3 ECR client for ``region`` (None: boto3's default; credentials: its chain)."""
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise PushError("boto3 is missing: pip install 'eikit[images]'") from exc
    if session is None:
        session = boto3.session.Session()
    try:
        return session.client("ecr", region_name=region, endpoint_url=endpoint_url)
    except Exception as exc:
        raise PushError("cannot make an ECR client: %s" % _aws_reason(exc)) from exc


def ensure_repository(ecr: Any, name: str) -> str:
    """The repository's URI, creating the repository when it does not exist yet."""
    try:
        found = ecr.describe_repositories(repositoryNames=[name])["repositories"]
        if found:
            return str(found[0]["repositoryUri"])
    except ecr.exceptions.RepositoryNotFoundException:
        pass
    except Exception as exc:
        raise PushError("cannot look up ECR repository %s: %s" % (name, _aws_reason(exc))) from exc
    logger.info("creating ECR repository %s", name)
    try:
        created = ecr.create_repository(
            repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
        )
    except ecr.exceptions.RepositoryAlreadyExistsException:
        # Someone else created it in between: take theirs.
        return ensure_repository(ecr, name)
    except Exception as exc:
        raise PushError("cannot create ECR repository %s: %s" % (name, _aws_reason(exc))) from exc
    return str(created["repository"]["repositoryUri"])


def ecr_auth(ecr: Any, registry_id: Optional[str] = None) -> RegistryAuth:
    """Credentials for the account's registry from ``GetAuthorizationToken`` (valid 12 h)."""
    kwargs = {"registryIds": [registry_id]} if registry_id else {}
    try:
        data = ecr.get_authorization_token(**kwargs)["authorizationData"][0]
    except Exception as exc:
        raise PushError("cannot get an ECR authorization token: %s" % _aws_reason(exc)) from exc
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryAuth(registry_host(data["proxyEndpoint"]), username, password)


def login(api: APIClient, auth: RegistryAuth) -> None:
    """Log the engine in (``docker login``); a no-op for a registry without credentials."""
    if auth.username is None:
        return
    try:
        api.login(
            username=auth.username,
            password=auth.password,
            registry="https://" + auth.registry,
            reauth=True,
        )
    except Exception as exc:
        raise PushError("docker login to %s failed: %s" % (auth.registry, exc)) from exc
    logger.info("logged in to %s as %s", auth.registry, auth.username)


# --- pushing -------------------------------------------------------------------------------


@dataclass
class PushProgress:
    """Reads the engine's push stream: one log line per layer state, the digest, errors."""

    reference: str
    layers: Dict[str, str] = field(default_factory=dict)
    sizes: Dict[str, int] = field(default_factory=dict)
    sent: Dict[str, int] = field(default_factory=dict)
    digest: Optional[str] = None
    size: Optional[int] = None
    _last_beat: float = field(default_factory=time.monotonic)

    def _heartbeat(self) -> None:
        """A line every few seconds while big layers upload."""
        now = time.monotonic()
        if now - self._last_beat < PROGRESS_EVERY_S:
            return
        self._last_beat = now
        logger.info(
            "%s: %.0f of %.0f MB sent",
            self.reference,
            sum(self.sent.values()) / 1e6,
            sum(self.sizes.values()) / 1e6,
        )

    def feed(self, chunk: Mapping[str, Any]) -> None:
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = chunk.get("error") or detail.get("message") or "unknown error"
            raise PushError("push of %s failed: %s" % (self.reference, str(message).strip()))
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            self.digest = str(aux["Digest"])
            self.size = int(aux.get("Size") or 0) or None
            return
        status = str(chunk.get("status") or "")
        layer = chunk.get("id")
        if not layer or not status:
            if status:
                logger.debug("push %s: %s", self.reference, status)
            return
        detail = chunk.get("progressDetail") or {}
        if detail.get("total"):
            self.sizes[layer] = int(detail["total"])
            self.sent[layer] = int(detail.get("current") or 0)
        if status == "Pushing" or self.layers.get(layer) == status:
            self.layers[layer] = status
            self._heartbeat()
            return
        self.layers[layer] = status
        if _is_done(status):
            done = sum(1 for s in self.layers.values() if _is_done(s))
            what = status[0].lower() + status[1:]
            if what.startswith("layer "):
                what = what[len("layer ") :]
            logger.info(
                "%s: layer %s: %s (%d/%d)", self.reference, layer, what, done, len(self.layers)
            )
        else:
            logger.debug("%s: layer %s: %s", self.reference, layer, status)


def _is_done(status: str) -> bool:
    return status in ("Pushed", "Layer already exists") or status.startswith("Mounted from")


def push_image(
    source: Optional[str],
    repository_uri: str,
    tags: Iterable[str],
    *,
    auth: Optional[RegistryAuth] = None,
    api: Optional[APIClient] = None,
    local_repository: str = LOCAL_REPOSITORY,
) -> List[PushResult]:
    """Push ``repository_uri:TAG`` for each tag.

    Each is tagged from the local image ``source`` or, when that is None, from
    ``local_repository:TAG`` (what ``eikit build`` names its images: ``eikit:TAG``).
    """
    tag_list = [t for t in dict.fromkeys(tags) if t]
    if not tag_list:
        raise PushError("no tag to push")
    own_client = api is None
    client = api if api is not None else connect(timeout=600)
    from docker.errors import ImageNotFound

    try:
        results = []
        for tag in tag_list:
            image = source or "%s:%s" % (local_repository, tag)
            try:
                client.inspect_image(image)
            except ImageNotFound:
                raise PushError(
                    "image %s is not on the engine; build it first (eikit build ... --tag %s)"
                    % (image, image)
                ) from None
            client.tag(image, repository_uri, tag)
            results.append(_push_one(client, repository_uri, tag, auth))
        return results
    finally:
        if own_client:
            client.close()


def _push_one(
    client: APIClient, repository_uri: str, tag: str, auth: Optional[RegistryAuth]
) -> PushResult:
    reference = "%s:%s" % (repository_uri, tag)
    logger.info("pushing %s", reference)
    started = time.monotonic()
    progress = PushProgress(reference)
    try:
        stream = client.push(
            repository_uri,
            tag=tag,
            stream=True,
            decode=True,
            auth_config=auth.auth_config if auth else None,
        )
        for chunk in stream:
            progress.feed(chunk)
    except PushError:
        raise
    except Exception as exc:
        raise PushError("push of %s failed: %s" % (reference, exc)) from exc
    seconds = time.monotonic() - started
    total = sum(progress.sizes.values())
    logger.info(
        "pushed %s%s in %.1f s (%d layers, %.1f MB uploaded)",
        reference,
        "@" + progress.digest if progress.digest else "",
        seconds,
        len(progress.layers),
        total / 1e6,
    )
    return PushResult(reference, progress.digest, progress.size, seconds)


def push_to_ecr(
    source: Optional[str],
    repository: str,
    region: Optional[str],
    tags: Iterable[str],
    *,
    session: Any = None,
    api: Optional[APIClient] = None,
    endpoint_url: Optional[str] = None,
) -> List[PushResult]:
    """Create the ECR repository if needed, log in, and push ``source`` under each tag."""
    ecr = ecr_client(region, session=session, endpoint_url=endpoint_url)
    uri = ensure_repository(ecr, repository)
    registry_id = uri.split(".", 1)[0]
    auth = ecr_auth(ecr, registry_id if registry_id.isdigit() else None)
    return _login_and_push(source, uri, tags, auth, api)


def push_to_registry(
    source: Optional[str],
    registry: str,
    repository: str,
    tags: Iterable[str],
    *,
    username: Optional[str] = None,
    password: Optional[str] = None,
    api: Optional[APIClient] = None,
) -> List[PushResult]:
    """Push to any registry by URL (no ECR calls); credentials only when given."""
    auth = RegistryAuth(registry_host(registry), username, password)
    uri = "%s/%s" % (auth.registry, repository)
    return _login_and_push(source, uri, tags, auth, api)


def _login_and_push(
    source: Optional[str],
    uri: str,
    tags: Iterable[str],
    auth: RegistryAuth,
    api: Optional[APIClient],
) -> List[PushResult]:
    """Log the engine in to ``auth``'s registry and push; closes a client it opened."""
    client = api if api is not None else connect(timeout=600)
    try:
        login(client, auth)
        return push_image(source, uri, tags, auth=auth, api=client)
    finally:
        if api is None:
            client.close()


def default_tags(image: Optional[str]) -> List[str]:
    """The tag of ``image`` (``latest`` when it has none), for a push without ``--tag``."""
    if not image:
        return []
    _, tag = split_tag(image)
    return [tag or "latest"]


def _aws_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/...)"
    if name == "NoRegionError":
        return "no AWS region: pass --region"
    error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    if error:
        return "%s: %s" % (error.get("Code"), error.get("Message"))
    return str(exc)
