"""Shared by the TensorFlow suites: a ready server on a model tree, shared by a module."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import requests

from eikit.local import ServerProcess
from tests.serving import Endpoint, ModelTree

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
BASE_ENV = {
    "EIKIT_FRAMEWORK": "tensorflow",
    "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    "EIKIT_WORKER_THREADS": "1",
}


@contextlib.contextmanager
def served(
    base: Path,
    save_model: Callable[[Path], None],
    env: Optional[Dict[str, str]] = None,
    script: Optional[str] = None,
    files: Optional[Dict[str, str]] = None,
) -> Iterator[Endpoint]:
    """A ready server on a new model tree under ``base`` (module-scoped fixtures share
    one); ``script`` becomes ``code/inference.py``, ``files`` more files under ``code/``."""
    tree = ModelTree(base / "ml", save_model)
    if script is not None:
        tree.script(script)
    for name, text in (files or {}).items():
        path = tree.model_dir / "code" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    settings = dict(BASE_ENV)
    settings.update(env or {})
    log_path = base / "server.log"
    server = ServerProcess(tree.base, settings)
    server.start(stdout=log_path.open("wb"))
    endpoint = Endpoint(server, log_path)
    try:
        status = server.wait_ready(240)
        assert status == 200, "server not ready (%s):\n%s" % (status, endpoint.log())
        yield endpoint
    finally:
        server.stop()


def post(
    endpoint: Endpoint,
    body: Any,
    content_type: Optional[str] = "application/json",
    attributes: Optional[str] = None,
    accept: Optional[str] = None,
) -> requests.Response:
    """POST /invocations; a dict or list body is sent as JSON."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {ATTRIBUTES: attributes} if attributes else {}
    return endpoint.invoke(body, content_type, accept=accept, headers=headers)
