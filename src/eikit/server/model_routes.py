"""The multi-model routes of SageMaker's custom-container contract (``SAGEMAKER_MULTI_MODEL``):

==========================  ==========================================================
``POST /models``            load ``{"model_name": ..., "url": ...}``: 200; 409 loaded
                            already; 404 nothing loadable there; 507 no room, or out of
                            memory; 400 a malformed body or a url outside the models
                            root; 500 with the reason when ``model_fn`` fails
``GET /models``             the models that serve, ``?max_results=N&next_page_token=T``
``GET /models/{name}``      one model; 404 if not loaded
``DELETE /models/{name}``   unload; 404 if not loaded
``POST /models/{name}/invoke``  invoke (so does ``/invocations`` with the
                            ``X-Amzn-SageMaker-Target-Model`` header)
==========================  ==========================================================

A name is everything between ``/models/`` and the end (or ``/invoke``), percent-decoded,
so names may hold ``/`` and ``.``; they are looked up, never used as paths.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional, Protocol
from urllib.parse import parse_qs

from eikit.errors import BadRequest, ModelNotReady
from eikit.server.boot import Boot
from eikit.server.models import ModelRegistry
from eikit.server.replies import Receive, Scope, Send, client_error, reply, reply_error

PREFIX = "/models/"
INVOKE = "/invoke"
MAX_LOAD_BODY = 64 * 1024
MAX_PAGE = 1000
PAGE_SIZE = re.compile(r"^[0-9]{1,6}\Z")


class Invocations(Protocol):
    """What these routes need of the app (eikit.server.app.App) that serves them."""

    boot: Boot

    async def invocations(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: bytes,
        target: Optional[str] = None,
    ) -> None:
        """Answer one invocation of the model ``target``."""

    async def read_body(self, receive: Receive, length: int, limit: Optional[int] = None) -> bytes:
        """The request body, at most ``limit`` bytes, else 413."""


class ModelRoutes:
    def __init__(self, app: Invocations) -> None:
        self.app = app

    @property
    def registry(self) -> ModelRegistry:
        registry = self.app.boot.registry
        if registry is None:
            raise ModelNotReady(self.app.boot.status())
        return registry

    async def collection(
        self, scope: Scope, receive: Receive, send: Send, request_id: bytes
    ) -> None:
        """``/models``: GET lists, POST loads."""
        try:
            if scope["method"] == "POST":
                answer = await self._load(receive)
            else:
                answer = self._list(scope)
        except Exception as exc:
            await reply_error(send, request_id, client_error(exc))
            return
        await reply(send, request_id, 200, json.dumps(answer).encode())

    async def member(self, scope: Scope, receive: Receive, send: Send, request_id: bytes) -> bool:
        """``/models/{name}`` and ``/models/{name}/invoke``; False if the method does not
        apply (the caller answers 405)."""
        path = scope["path"]
        method = scope["method"]
        if method == "POST" and path.endswith(INVOKE) and len(path) > len(PREFIX + INVOKE):
            name = path[len(PREFIX) : -len(INVOKE)]
            await self.app.invocations(scope, receive, send, request_id, name)
            return True
        name = path[len(PREFIX) :]
        try:
            if method in ("GET", "HEAD"):
                answer: Dict[str, Any] = self.registry.describe(name)
            elif method == "DELETE":
                await self.registry.unload(name)
                answer = {"status": "model %s unloaded" % json.dumps(name)}
            else:
                return False
        except Exception as exc:
            await reply_error(send, request_id, client_error(exc))
            return True
        await reply(send, request_id, 200, json.dumps(answer).encode())
        return True

    async def _load(self, receive: Receive) -> Dict[str, Any]:
        body = await self.app.read_body(receive, -1, MAX_LOAD_BODY)
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("load request is not JSON: %s" % exc) from None
        if not isinstance(request, dict):
            raise BadRequest('load request must be a JSON object {"model_name": ..., "url": ...}')
        model = await self.registry.load(request.get("model_name"), request.get("url"))
        return {"status": "model %s loaded" % json.dumps(model.name), **model.listing()}

    def _list(self, scope: Scope) -> Dict[str, Any]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        token = _one(query, "next_page_token")
        raw = _one(query, "max_results")
        max_results: Optional[int] = None
        if raw:
            # ASCII digits only (str.isdigit() also takes "²", which int() refuses), and few
            # of them (int() refuses thousands).
            if not PAGE_SIZE.match(raw) or not 1 <= int(raw) <= MAX_PAGE:
                raise BadRequest("max_results must be a whole number from 1 to %d" % MAX_PAGE)
            max_results = int(raw)
        return self.registry.page(token, max_results)


def _one(query: Dict[str, Any], key: str) -> Optional[str]:
    values = query.get(key)
    return values[-1] if values else None
