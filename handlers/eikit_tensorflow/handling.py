"""Requests as AWS's TensorFlow Serving container handled them, for one worker.

Which way a request goes is fixed when the script is imported, as AWS's ``python_service``
fixes it:

- no script: the body becomes a TF Serving request (``invocation.default_request``: JSON,
  JSON lines, CSV; other types 415) for the model, version and method the custom
  attributes name, and the answer is TF Serving's JSON;
- ``handler(data, context)``: the script does everything, usually posting to
  ``context.rest_uri`` itself; it returns ``(body, content_type)``;
- ``input_handler(data, context)`` and ``output_handler(response, context)``: what the
  first returns is posted to ``context.rest_uri`` as ``requests.post(uri, data=...)``
  would send it, and the second gets the answer as a ``requests.Response``;
- a script with sagemaker-inference's ``*_fn`` hooks instead (``model_fn``, ``input_fn``,
  ...): eikit's own pipeline with the TensorFlow session's default hooks (an eikit
  extension: AWS's TF container refused such a script).

A script that defines none of these, or only one of ``input_handler``/``output_handler``,
is refused at start-up, as AWS's container refused it.

Errors: what the script raises is a 500, as on AWS, except that when the script's TF
Serving call answered 4xx in this request (a body TF Serving refused) the client gets that
4xx: on AWS a typical ``output_handler`` re-raised it and the client saw a 500 for its own
mistake.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Protocol, Tuple
from urllib.parse import urlsplit

from eikit import batching
from eikit.errors import EikitError, InferenceError, InternalError, UserScriptError
from eikit.pipeline import NOT_TIMED, DefaultHooks, Pipeline, Result, as_body
from eikit_tensorflow import batches, invocation, rest
from eikit_tensorflow.executor import Executor, LoadedModels

if TYPE_CHECKING:
    from eikit.context import Context, HeaderSource
    from eikit.user_module import UserHooks

log = logging.getLogger(__name__)

SCRIPT_HOOKS = ("handler", "input_handler", "output_handler")


def _callable(namespace: Dict[str, Any], name: str) -> Optional[Callable[..., Any]]:
    value = namespace.get(name)
    if value is None:
        return None
    if not callable(value):
        raise UserScriptError("%s is defined but is not callable" % name)
    return value


def request_body(uri: str, data: Any) -> bytes:
    """What ``requests.post(uri, data=data)`` sends as the body."""
    try:
        import requests
    except ImportError:
        requests = None  # type: ignore[assignment]
    if requests is not None and not hasattr(data, "read"):
        body = requests.Request("POST", uri, data=data).prepare().body
    else:
        body = data
    if body is None:
        return b""
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise InternalError(
        "input_handler returned %s: return str or bytes (the TF Serving request body)"
        % type(data).__name__
    )


def make_response(status: int, content: bytes, uri: str) -> Any:
    """A ``requests.Response`` for a TF Serving answer (a stand-in with the same main
    attributes when requests is not installed)."""
    try:
        from requests.models import Response
        from requests.structures import CaseInsensitiveDict
    except ImportError:
        return _Response(status, content, uri)
    response = Response()
    response.status_code = status
    response._content = content
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
    response.url = uri
    response.encoding = "utf-8"
    response.reason = "OK" if status == 200 else "Error"
    return response


class _Response:
    def __init__(self, status: int, content: bytes, uri: str) -> None:
        self.status_code = status
        self.content = content
        self.url = uri
        self.headers = {"Content-Type": "application/json"}
        self.ok = status < 400
        self.encoding = "utf-8"

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if not self.ok:
            raise RuntimeError("%d Error for url: %s" % (self.status_code, self.url))


class TensorFlowDefaults(DefaultHooks, Protocol):
    """What the pipeline needs of the TensorFlow session (``session.TensorFlowSession``):
    the default hooks, and the models behind ``context.rest_uri``."""

    def load_models(self, model_dir: Path) -> LoadedModels: ...


class TensorFlowPipeline:
    """``load()``, ``invoke(...) -> Result``, ``timings`` and ``context``, as the core's
    ``Pipeline`` offers them."""

    def __init__(
        self,
        hooks: UserHooks,
        session: TensorFlowDefaults,
        context: Context,
        default_accept: str,
    ) -> None:
        self.hooks = hooks
        self.session = session
        self.context = context
        self.default_accept = default_accept
        self.timings: Tuple[float, float, float] = NOT_TIMED
        self.executor: Optional[Executor] = None
        self.default_model = ""
        self.endpoint: Optional[rest.LocalRestEndpoint] = None
        self.rest_port: Optional[int] = None
        self.grpc_port: Optional[int] = None
        self._last_tfs_status = 0
        namespace = hooks.namespace
        self.handler = _callable(namespace, "handler")
        self.input_handler = _callable(namespace, "input_handler")
        self.output_handler = _callable(namespace, "output_handler")
        self.delegate: Optional[Pipeline] = None
        if self.handler is None and (self.input_handler is None) != (self.output_handler is None):
            raise UserScriptError(
                "Handlers are not implemented correctly in user script: define handler(data, "
                "context), or both input_handler(data, context) and output_handler(response, "
                "context) (only %s is defined)"
                % ("input_handler" if self.input_handler else "output_handler")
            )
        self.scripted = self.handler is not None or self.input_handler is not None
        if not self.scripted and hooks.hooks:
            self.delegate = Pipeline(hooks, session, context, default_accept)
        elif not self.scripted and hooks.module_name is not None:
            raise UserScriptError(
                "Handlers are not implemented correctly in user script %s: define "
                "handler(data, context), or input_handler(data, context) and "
                "output_handler(response, context)" % hooks.module_name
            )

    # --- start-up ---------------------------------------------------------------

    def load(self) -> None:
        if self.delegate is not None:
            self.delegate.load()
            self.timings = NOT_TIMED
            return
        loaded = self.session.load_models(Path(self.context.model_dir))
        self.executor = loaded.executor
        self.default_model = loaded.default
        self.context.model_name = loaded.default
        if self.scripted:
            self.rest_port = self.executor.rest_port()
            self.grpc_port = self.executor.grpc_port()
            if self.rest_port is None:
                self.endpoint = rest.LocalRestEndpoint(self.executor, self._observe)
                self.rest_port = self.endpoint.port

    def _observe(self, status: int) -> None:
        self._last_tfs_status = status

    # --- a request ----------------------------------------------------------------

    def invoke(
        self,
        body: bytes,
        content_type: Optional[str],
        accept: Optional[str],
        headers: HeaderSource,
        request_id: str = "",
    ) -> Result:
        if self.delegate is not None:
            result = self.delegate.invoke(body, content_type, accept, headers, request_id)
            self.timings = self.delegate.timings
            return result
        context = self.context
        context.start_request(headers, request_id)
        self.timings = NOT_TIMED
        assert self.executor is not None, "invoke before load"
        attributes = invocation.parse_tfs_custom_attributes(context.custom_attributes)
        if not self.scripted:
            return self._default(body, content_type, accept, attributes)
        return self._scripted(body, content_type, accept, attributes)

    def invoke_batch(self, requests: List[batching.Request]) -> List[batching.Outcome]:
        """Dynamic batching: see ``eikit_tensorflow.batches``; a script's pipeline runs each
        request alone, a delegate (sagemaker-inference hooks) as the core batches them."""
        if self.delegate is not None:
            return batching.invoke_batch(self.delegate, requests)
        if self.scripted:
            return [batching.alone(self, request) for request in requests]
        return batches.invoke_batch(self, requests)

    def _default(
        self,
        body: bytes,
        content_type: Optional[str],
        accept: Optional[str],
        attributes: Dict[str, str],
    ) -> Result:
        assert self.executor is not None
        media = invocation.check_accept(accept)
        started = perf_counter()
        where = invocation.target(attributes, self.default_model)
        request = invocation.default_request(body, content_type)
        decoded_at = perf_counter()
        answer = self.executor.request(where.model, where.version, where.method, request)
        predicted_at = perf_counter()
        encoded = invocation.dumps(answer)
        self.timings = (
            decoded_at - started,
            predicted_at - decoded_at,
            perf_counter() - predicted_at,
        )
        return Result(encoded, media)

    def tfs_context(
        self, body: bytes, content_type: Optional[str], accept: Optional[str], attributes: Dict
    ) -> Any:
        """AWS's ``Context`` for this request (``tfs_utils.parse_request``)."""
        return invocation.Context(
            attributes.get("tfs-model-name"),
            attributes.get("tfs-model-version"),
            attributes.get("tfs-method"),
            invocation.rest_uri(self.rest_port, attributes, self.default_model),
            str(self.grpc_port) if self.grpc_port is not None else None,
            None,
            self.context.custom_attributes,
            content_type or invocation.DEFAULT_CONTENT_TYPE,
            accept or invocation.DEFAULT_ACCEPT_HEADER,
            len(body),
        )

    def _post(self, uri: str, data: Any) -> Any:
        """``requests.post(uri, data=data)`` for ``input_handler``'s result: answered here
        without HTTP when it is for this worker's endpoint, over HTTP otherwise."""
        assert self.executor is not None
        payload = request_body(uri, data)
        parts = urlsplit(uri)
        local = self.endpoint is not None and parts.hostname in ("localhost", "127.0.0.1")
        if local and parts.port == self.rest_port:
            try:
                model, version, method = invocation.split_tfs_path(parts.path)
            except EikitError as exc:
                status, answer = 404, {"error": str(exc)}
            else:
                status, answer = rest.answer(self.executor, model, version, method, payload)
            self._last_tfs_status = status
            return make_response(status, invocation.dumps(answer), uri)
        import requests

        response = requests.post(uri, data=payload)
        self._last_tfs_status = response.status_code
        return response

    def _scripted(
        self,
        body: bytes,
        content_type: Optional[str],
        accept: Optional[str],
        attributes: Dict[str, str],
    ) -> Result:
        tfs_context = self.tfs_context(body, content_type, accept, attributes)
        data = io.BytesIO(body)
        self._last_tfs_status = 0
        started = perf_counter()
        try:
            if self.handler is not None:
                produced = self.handler(data, tfs_context)
            else:
                assert self.input_handler is not None and self.output_handler is not None
                processed = self.input_handler(data, tfs_context)
                response = self._post(tfs_context.rest_uri, processed)
                produced = self.output_handler(response, tfs_context)
        except EikitError:
            raise
        except Exception as exc:
            status = self._last_tfs_status
            if 400 <= status < 500:
                raise InferenceError(
                    "TF Serving refused the request (%d): %s: %s"
                    % (status, type(exc).__name__, exc),
                    status=status,
                ) from exc
            raise
        finally:
            self.timings = (math.nan, perf_counter() - started, math.nan)
        return self._finish(produced)

    def _finish(self, produced: Any) -> Result:
        """AWS: ``res.body, res.content_type = handler(data, context)``."""
        if not isinstance(produced, (tuple, list)) or len(produced) != 2:
            raise InternalError(
                "the script's handler returned %s: return (body, content_type), as AWS's "
                "container requires" % type(produced).__name__
            )
        produced_body, content_type = produced
        status, set_type, headers = self.context.response()
        content_type = str(content_type or set_type or invocation.DEFAULT_ACCEPT_HEADER)
        if any(c in content_type for c in "\r\n\0"):
            raise InternalError("content type %r has a line break" % content_type)
        return Result(as_body(produced_body), content_type, headers, status)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
        if self.executor is not None:
            self.executor.close()
