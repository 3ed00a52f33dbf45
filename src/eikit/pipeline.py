"""decode -> hooks -> encode, for one model in one worker. Knows nothing of HTTP."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from eikit import codecs
from eikit.context import Context, HeaderSource
from eikit.errors import InternalError
from eikit.runtime import ModelSession
from eikit.user_module import UserHooks

log = logging.getLogger(__name__)


@dataclass
class Result:
    body: bytes
    content_type: str
    headers: Dict[str, str] = field(default_factory=dict)


class Pipeline:
    def __init__(
        self,
        hooks: UserHooks,
        session: ModelSession,
        context: Context,
        default_accept: str = codecs.JSON,
    ) -> None:
        self.hooks = hooks
        self.session = session
        self.context = context
        self.default_accept = default_accept
        self.model: Any = None
        self._transform = hooks.get("transform_fn")
        self._input = hooks.get("input_fn")
        self._predict = hooks.get("predict_fn")
        self._output = hooks.get("output_fn")

    # --- start-up ---------------------------------------------------------

    def load(self) -> None:
        """pre_model_fn, model_fn (the user's or the runtime's), model_warmup_fn: once."""
        model_dir = self.context.model_dir
        pre = self.hooks.get("pre_model_fn")
        if pre is not None:
            pre(model_dir, context=self.context)
        model_fn = self.hooks.get("model_fn")
        if model_fn is None:
            self.model = self.session.load(Path(model_dir))
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
    ) -> Result:
        context = self.context
        context.start_request(headers)
        content_type = content_type or codecs.JSON
        user_accept = self.default_accept if codecs.is_default_accept(accept) else str(accept)
        if self._transform is not None:
            produced = self._transform(self.model, body, content_type, user_accept, context=context)
            return self._finish(produced, user_accept)
        # Negotiate before predicting: a 406 should not cost a forward pass.
        out_type = user_accept if self._output else codecs.negotiate(accept, self.default_accept)
        if self._input is not None:
            data = self._input(body, content_type, context=context)
        else:
            data = codecs.decode(body, content_type)
        if self._predict is not None:
            prediction = self._predict(data, self.model, context=context)
        else:
            prediction = self.session.predict(self.model, data)
        if self._output is not None:
            return self._finish(self._output(prediction, out_type, context=context), out_type)
        encoded = codecs.encode(self.session.to_wire(prediction), out_type)
        return Result(encoded, out_type, context.get_response_headers(0))

    def _finish(self, produced: Any, accept: str) -> Result:
        """A user hook's answer: ``body`` or ``(body, content_type)``, as bytes or str."""
        listed = codecs.parse_accept(accept)
        content_type = listed[0] if listed else accept
        if isinstance(produced, tuple) and len(produced) == 2:
            produced, content_type = produced
        if isinstance(produced, str):
            produced = produced.encode("utf-8")
        elif isinstance(produced, (bytearray, memoryview)):
            produced = bytes(produced)
        elif not isinstance(produced, bytes):
            raise InternalError(
                "output_fn/transform_fn returned %s; return bytes or str, optionally "
                "as (body, content_type)" % type(produced).__name__
            )
        return Result(produced, str(content_type), self.context.get_response_headers(0))
