"""Local mode for multi-model endpoints: a folder of models (sub-folders, or ``model.tar.gz``
files as SageMaker keeps them under its S3 prefix), served as SageMaker serves them.

SageMaker downloads and unpacks a model on its first invocation, then calls the
container's ``POST /models``; locally every model of the folder is loaded once the server
answers ``/ping`` (past ``EIKIT_MAX_MODELS`` or the memory cap, the server evicts as it
would on SageMaker). ``ModelsClient`` is the same calls for ``eikit invoke``, the pytest
plugin and the tests.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from eikit.errors import ConfigurationError
from eikit.local import resolve_model_source

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
CONTAINER_MODELS = "/opt/ml/models"  # where SageMaker puts a multi-model endpoint's models


def model_name(entry: Path) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        if entry.name.endswith(suffix):
            return entry.name[: -len(suffix)]
    return entry.name


def collect_models(source: Path, work: Path) -> Dict[str, Path]:
    """name -> model folder for each entry of ``source`` (archives extracted under ``work``)."""
    if not source.is_dir():
        raise ConfigurationError("--model-dir %s is not a folder of models" % source)
    models: Dict[str, Path] = {}
    for entry in sorted(source.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and not entry.name.endswith(ARCHIVE_SUFFIXES):
            continue
        name = model_name(entry)
        if name in models:
            raise ConfigurationError("two models in %s are both called %r" % (source, name))
        models[name] = resolve_model_source(entry, work)
    if not models:
        raise ConfigurationError("%s holds no model folders or model.tar.gz files" % source)
    return models


def container_mounts(models: Dict[str, Path]) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
    """Read-only mounts for a container, and each model's folder as the container sees it.
    Models are mounted by position, never by name: names are not paths."""
    mounts, urls = [], {}
    for index, (name, path) in enumerate(sorted(models.items())):
        target = "%s/%05d/model" % (CONTAINER_MODELS, index)
        mounts.append({"Type": "bind", "Source": str(path), "Target": target, "ReadOnly": True})
        urls[name] = target
    return mounts, urls


def link_models(models: Dict[str, Path], root: Path) -> Dict[str, str]:
    """Lay the models out under ``root`` as SageMaker lays them out under
    ``/opt/ml/models`` (the server's models root): a link ``root/NNNNN/model`` to each
    folder, by position, never by name. Returns each model's link, the url to load it from.
    Links left by an earlier run are replaced; nothing else in ``root`` is touched."""
    for old in root.glob("[0-9][0-9][0-9][0-9][0-9]/model"):
        if old.is_symlink():
            old.unlink()
            with contextlib.suppress(OSError):
                old.parent.rmdir()
    urls = {}
    for index, (name, path) in enumerate(sorted(models.items())):
        link = root / ("%05d" % index) / "model"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            raise ConfigurationError("%s is in the way of the models' links" % link)
        link.symlink_to(path.resolve(), target_is_directory=True)
        urls[name] = str(link)
    return urls


class ModelsClient:
    """The multi-model routes of a running endpoint; statuses are returned, not raised."""

    def __init__(self, url: str, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(
        self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict] = None
    ) -> Tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path, data=body, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def load(self, name: str, url: str) -> Tuple[int, Any]:
        body = json.dumps({"model_name": name, "url": url}).encode()
        return self._call("POST", "/models", body, {"Content-Type": "application/json"})

    def unload(self, name: str) -> Tuple[int, Any]:
        return self._call("DELETE", model_path(name))

    def describe(self, name: str) -> Tuple[int, Any]:
        return self._call("GET", model_path(name))

    def names(self) -> List[str]:
        """Every loaded model, following ``nextPageToken``."""
        names: List[str] = []
        token: Optional[str] = None
        while True:
            query = "?" + urllib.parse.urlencode({"next_page_token": token}) if token else ""
            status, page = self._call("GET", "/models" + query)
            if status != 200:
                raise ConfigurationError("GET /models answered %d: %s" % (status, page))
            names.extend(model["modelName"] for model in page["models"])
            token = page.get("nextPageToken")
            if not token:
                return names


def model_path(name: str) -> str:
    return "/models/" + urllib.parse.quote(name, safe="")


def invoke_path(name: str) -> str:
    """Where SageMaker sends an invocation of ``name`` (the header names it too)."""
    return model_path(name) + "/invoke"


def load_all(
    client: ModelsClient, urls: Dict[str, str], say: Callable[[str], None] = print
) -> Dict[str, str]:
    """Load every model, one after another, saying how each went; name -> error of those
    that did not load."""
    failed: Dict[str, str] = {}
    for position, (name, url) in enumerate(sorted(urls.items()), 1):
        started = time.monotonic()
        status, answer = client.load(name, url)
        took = time.monotonic() - started
        if status == 200:
            say("loaded model %r (%d of %d) in %.1fs" % (name, position, len(urls), took))
        else:
            error = answer.get("error") if isinstance(answer, dict) else answer
            failed[name] = "%d %s" % (status, error)
            say("model %r did not load (%d of %d): %s" % (name, position, len(urls), failed[name]))
    return failed


def to_stderr(text: str) -> None:
    sys.stderr.write("eikit: %s\n" % text)
    sys.stderr.flush()
