"""What runs TF Serving REST requests for one model directory, whichever way it is done.

Two implementations: ``inprocess.InProcessExecutor`` (TensorFlow in eikit's worker) and
``serving.ServingExecutor`` (a ``tensorflow_model_server`` binary next to the worker, EI's
path). The session picks one at start-up (``choose``); everything above it (the request
parsing, the scripts' ``context.rest_uri`` endpoint, the answers) is the same for both.

Errors are eikit errors carrying their status, with messages naming what exists:

- unknown model or version: ``ModelNotFound`` (404);
- unknown signature, an input the signature does not take, a malformed body: ``BadRequest``
  (400).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional

from eikit.errors import BadRequest, ModelNotFound

METHODS = ("predict", "classify", "regress")


class Executor(ABC):
    """Runs TF Serving REST requests for the models of one model dir."""

    @abstractmethod
    def models(self) -> Dict[str, List[int]]:
        """name -> versions it serves (ascending)."""

    @abstractmethod
    def request(
        self, model: str, version: Optional[int], method: str, body: Dict[str, Any]
    ) -> Dict[str, Any]:
        """One TF Serving REST request: ``POST /v1/models/<model>[/versions/<version>]:<method>``.

        ``method`` is ``predict``, ``classify`` or ``regress``; ``body`` the REST JSON
        request (``{"instances": ...}`` row form or ``{"inputs": ...}`` columnar, optional
        ``"signature_name"``; classify/regress: ``{"signature_name", "context",
        "examples"}``). ``version`` None is the highest version. Returns TF Serving's REST
        JSON answer (``{"predictions": ...}`` / ``{"outputs": ...}`` / ``{"results": ...}``).
        """

    def close(self) -> None:  # noqa: B027 - optional, as the interface says
        """Release what the executor holds (a server process, sessions)."""

    def rest_port(self) -> Optional[int]:
        """The port of a TF Serving REST API on localhost serving these models, if this
        executor has one (a ``tensorflow_model_server``): scripts' ``context.rest_uri``
        then points there. None (the default): eikit serves a compatible endpoint itself."""
        return None

    def grpc_port(self) -> Optional[int]:
        """The port of TF Serving's gRPC API for these models, if this executor has one
        (``context.grpc_port``); None: there is none (the in-process path)."""
        return None

    def describe(self) -> str:
        """One line for the log and ``eikit detect``: which path and why."""
        return type(self).__name__

    # --- helpers both implementations share ------------------------------------

    def resolve(self, model: str, version: Optional[int]) -> int:
        """The version a request for ``model`` (and ``version``, None = highest) goes to;
        ``ModelNotFound`` naming what exists otherwise."""
        served = self.models()
        if model not in served:
            raise ModelNotFound(
                "Servable not found for request: model %r is not served (models: %s)"
                % (model, ", ".join(sorted(served)) or "none")
            )
        versions = served[model]
        if version is None:
            return max(versions)
        if version not in versions:
            raise ModelNotFound(
                "Servable not found for request: model %r has no version %s (versions: %s)"
                % (model, version, ", ".join(str(v) for v in versions))
            )
        return version


def check_method(method: str) -> str:
    if method not in METHODS:
        raise BadRequest(
            "unknown method %r (TF Serving's REST API has: %s)" % (method, ", ".join(METHODS))
        )
    return method


class LoadedModels:
    """What the default ``model_fn`` returns: the executor and the model requests go to by
    default."""

    def __init__(self, executor: Executor, default: str) -> None:
        self.executor = executor
        self.default = default
