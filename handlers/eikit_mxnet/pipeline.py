"""The core pipeline, with what AWS's MXNet toolkit adds to sagemaker-inference's hooks.

AWS's ``MXNetModuleTransformer`` passes the model to a user ``input_fn`` that has a
parameter named ``model`` (``input_fn(input_data, content_type, model)``, the signature the
SageMaker Python SDK once documented); such a hook gets the loaded model here too.

The short path (decode, predict, encode with no user hook) is off: the default ``input_fn``
reshapes CSV for the model, which needs the Content-Type the short path does not carry.
Both paths answer the same; this one costs a few function calls per request.
"""

from __future__ import annotations

import inspect
from typing import Any

from eikit.context import Context
from eikit.pipeline import Pipeline
from eikit.runtime import ModelSession
from eikit.user_module import Hook, UserHooks


def takes_model(func: Any) -> bool:
    """AWS's test: ``'model' in inspect.getfullargspec(input_fn).args``."""
    try:
        return "model" in inspect.getfullargspec(func).args
    except TypeError:
        return False


class MXNetPipeline(Pipeline):
    def __init__(
        self, hooks: UserHooks, session: ModelSession, context: Context, default_accept: str
    ) -> None:
        super().__init__(hooks, session, context, default_accept, short_path=False)
        user_input = hooks.get("input_fn")
        if user_input is not None and takes_model(user_input.func):
            func = user_input.func
            self._input = Hook(
                "input_fn", lambda data, content_type: func(data, content_type, self.model), False
            )


def mxnet_pipeline(
    hooks: UserHooks, session: ModelSession, context: Context, default_accept: str
) -> Pipeline:
    return MXNetPipeline(hooks, session, context, default_accept)
