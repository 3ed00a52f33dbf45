"""decode -> hooks -> encode, for one model in one worker. Knows nothing of HTTP, nor of
the framework: the runtime's ``ModelSession`` supplies the default hooks (``DefaultHooks``).

Every mix of user and default hooks hands on what AWS's toolkits hand on
(sagemaker-inference's ``Transformer``, with the framework's ``DefaultInferenceHandler``):

- a user ``input_fn`` or ``transform_fn`` gets the body as ``str`` when the Content-Type is
  exactly ``application/json`` or ``text/csv`` (UTF-8; a body that is not UTF-8 is a 400),
  else as ``bytes``; a missing Content-Type counts as ``application/json``;
- ``accept`` is the request's Accept header, or ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``
  when it is missing or ``*/*``;
- the default hooks are the session's: ``input_fn`` gives the framework's input type,
  ``predict_fn`` returns the framework's output, ``output_fn`` takes either;
- what ``output_fn`` or ``transform_fn`` returns is the body: ``bytes`` as they are, ``str``
  as UTF-8, anything else as ``json.dumps(value, indent=2)`` (as MMS sends it), or a
  ``(body, content_type)`` tuple. The reply's type is the tuple's, else the one the script
  set with ``context.set_response_content_type``, else the first type in ``accept``.

With no user request hook at all, the request takes the short path
``codecs.decode`` -> ``session.predict`` -> ``codecs.encode``, which answers exactly what the
default hooks composed would.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Dict, List, Optional, Protocol, Tuple, Union

from eikit import codecs
from eikit.context import Context, HeaderSource
from eikit.errors import BadRequest, InternalError
from eikit.user_module import UserHooks

log = logging.getLogger(__name__)

# sagemaker-inference's content_types.UTF8_TYPES, compared as it does: exactly.
UTF8_TYPES = (codecs.JSON, codecs.CSV)
# HTTP forbids a body with these.
BODILESS = (204, 304)
NOT_TIMED: Tuple[float, float, float] = (math.nan, math.nan, math.nan)


@dataclass
class Result:
    body: bytes
    content_type: str
    headers: Dict[str, str] = field(default_factory=dict)
    status: int = 200


def user_body(body: bytes, content_type: str) -> Union[bytes, str]:
    """The body as a user ``input_fn``/``transform_fn`` receives it."""
    if content_type not in UTF8_TYPES:
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("%s body is not UTF-8: %s" % (content_type, exc)) from None


def as_body(produced: Any) -> bytes:
    """A hook's body as bytes, as MMS turns it into its reply."""
    if isinstance(produced, bytes):
        return produced
    if isinstance(produced, (bytearray, memoryview)):
        return bytes(produced)
    if isinstance(produced, str):
        return produced.encode("utf-8")
    try:
        return json.dumps(produced, indent=2).encode("utf-8")
    except (TypeError, ValueError):
        raise InternalError(
            "output_fn/transform_fn returned %s: return bytes, str or a JSON-serialisable "
            "value, optionally as (body, content_type)" % type(produced).__name__
        ) from None


class DefaultHooks(Protocol):
    """The default hooks a runtime supplies: ``eikit.runtime.ModelSession`` (which documents
    each) implements this. The pipeline sits below the runtimes and knows only this."""

    def model_fn(self, model_dir: Path) -> Any: ...

    def prepare(self, model: Any) -> Any: ...

    def input_fn(self, input_data: Union[bytes, str], content_type: str) -> Any: ...

    def predict_fn(self, data: Any, model: Any) -> Any: ...

    def output_fn(self, prediction: Any, accept: str) -> Tuple[bytes, str]: ...

    def predict(self, model: Any, data: Any) -> Any: ...

    def batch_key(self, data: Any) -> Optional[Tuple[Any, int]]: ...

    def stack_inputs(self, inputs: List[Any]) -> Any: ...

    def split_prediction(self, prediction: Any, counts: List[int]) -> Optional[List[Any]]: ...


class Pipeline:
    def __init__(
        self,
        hooks: UserHooks,
        session: DefaultHooks,
        context: Context,
        default_accept: str = codecs.JSON,
        short_path: bool = True,
    ) -> None:
        """``short_path=False`` composes the default hooks even when the script defines
        none (tests compare both paths)."""
        self.hooks = hooks
        self.session = session
        self.context = context
        self.default_accept = default_accept
        self.model: Any = None
        self.timings = NOT_TIMED
        self._transform = hooks.get("transform_fn")
        self._input = hooks.get("input_fn")
        self._predict = hooks.get("predict_fn")
        self._output = hooks.get("output_fn")
        user_request_hooks = (self._transform, self._input, self._predict, self._output)
        self.short_path = short_path and all(hook is None for hook in user_request_hooks)

    # --- start-up ---------------------------------------------------------

    def load(self) -> None:
        """pre_model_fn, model_fn (the user's or the runtime's), model_warmup_fn: once."""
        model_dir = self.context.model_dir
        pre = self.hooks.get("pre_model_fn")
        if pre is not None:
            pre(model_dir, context=self.context)
        model_fn = self.hooks.get("model_fn")
        if model_fn is None:
            self.model = self.session.model_fn(Path(model_dir))
        else:
            self.model = self.session.prepare(model_fn(model_dir, context=self.context))
        warmup = self.hooks.get("model_warmup_fn")
        if warmup is not None:
            warmup(model_dir, self.model, context=self.context)

    # --- a request --------------------------------------------------------

    def invoke(
        self,
        body: bytes,
        content_type: Optional[str],
        accept: Optional[str],
        headers: HeaderSource,
        request_id: str = "",
    ) -> Result:
        """One request. Afterwards ``timings`` holds the seconds spent in decode
        (``input_fn``), predict (``predict_fn``, or ``transform_fn``) and encode
        (``output_fn``); NaN for a phase that did not finish."""
        context = self.context
        context.start_request(headers, request_id)
        self.timings = NOT_TIMED
        content_type = content_type or codecs.JSON
        if self.short_path:
            # Negotiate before predicting: a 406 should not cost a forward pass.
            media = codecs.negotiate(accept, self.default_accept)
            started = perf_counter()
            decoded = codecs.decode(body, content_type)
            decoded_at = perf_counter()
            prediction = self.session.predict(self.model, decoded)
            predicted_at = perf_counter()
            encoded = codecs.encode(prediction, media)
            self.timings = (
                decoded_at - started,
                predicted_at - decoded_at,
                perf_counter() - predicted_at,
            )
            return Result(encoded, media)
        user_accept = self.default_accept if codecs.is_default_accept(accept) else str(accept)
        if self._transform is not None:
            started = perf_counter()
            produced = self._transform(
                self.model,
                user_body(body, content_type),
                content_type,
                user_accept,
                context=context,
            )
            result = self._finish(produced, user_accept)
            self.timings = (math.nan, perf_counter() - started, math.nan)
            return result
        return self._compose(body, content_type, accept, user_accept)

    def _compose(
        self, body: bytes, content_type: str, accept: Optional[str], user_accept: str
    ) -> Result:
        context = self.context
        session = self.session
        # The default output_fn produces one of the types it knows: pick it (or 406) first.
        out_accept = user_accept if self._output else codecs.negotiate(accept, self.default_accept)
        started = perf_counter()
        if self._input is not None:
            data = self._input(user_body(body, content_type), content_type, context=context)
        else:
            data = session.input_fn(body, content_type)
        decoded_at = perf_counter()
        if self._predict is not None:
            prediction = self._predict(data, self.model, context=context)
        else:
            prediction = session.predict_fn(data, self.model)
        predicted_at = perf_counter()
        if self._output is not None:
            produced = self._output(prediction, out_accept, context=context)
        else:
            produced = session.output_fn(prediction, out_accept)
        result = self._finish(produced, out_accept)
        self.timings = (
            decoded_at - started,
            predicted_at - decoded_at,
            perf_counter() - predicted_at,
        )
        return result

    def _finish(self, produced: Any, accept: str) -> Result:
        """A hook's answer, ``body`` or ``(body, content_type)``, with what the script set."""
        status, set_type, headers = self.context.response()
        content_type: Any = None
        if isinstance(produced, tuple):
            if len(produced) < 2:
                raise InternalError("output_fn/transform_fn returned a tuple of %d" % len(produced))
            produced, content_type = produced[0], produced[1]
        if not content_type:
            content_type = set_type
        if not content_type:
            listed = codecs.parse_accept(accept)
            content_type = listed[0] if listed else accept
        content_type = str(content_type)
        if "\n" in content_type or "\r" in content_type or "\0" in content_type:
            raise InternalError("content type %r has a line break" % content_type)
        try:
            content_type.encode("latin-1")
        except UnicodeEncodeError:
            raise InternalError("content type %r is not latin-1 text" % content_type) from None
        body = b"" if status in BODILESS else as_body(produced)
        return Result(body, content_type, headers, status)
