"""Errors that carry their HTTP status. No web-framework import here: the server maps them."""

from __future__ import annotations

from typing import Optional


class EikitError(Exception):
    """Base class: ``status`` is what the client sees, ``code`` a stable machine-readable name."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InferenceError(EikitError):
    """Raise from user code to answer with your own status (default 400).

    >>> raise InferenceError("field 'text' is required", status=422)
    """

    code = "inference_error"

    def __init__(self, message: str, status: int = 400) -> None:
        if not isinstance(status, int) or not 400 <= status <= 599:
            # A bad status from user code must not become a bad response.
            message = "%s (invalid status %r replaced by 500)" % (message, status)
            status = 500
        super().__init__(message, status)


class BadRequest(EikitError):
    status = 400
    code = "bad_request"


class ModelNotFound(EikitError):
    status = 404
    code = "model_not_found"


class NotAcceptable(EikitError):
    status = 406
    code = "not_acceptable"


class PayloadTooLarge(EikitError):
    status = 413
    code = "payload_too_large"


class BatchTooLarge(EikitError):
    """A batch larger than every batch size the model was compiled for (Neuron), with
    splitting turned off; the message names the compiled sizes."""

    status = 413
    code = "batch_too_large"


class UnsupportedMediaType(EikitError):
    status = 415
    code = "unsupported_media_type"


class ModelNotReady(EikitError):
    status = 503
    code = "model_not_ready"


class ModelLoadFailed(EikitError):
    """The model did not load; /ping stays 503 with this code until the server is replaced."""

    status = 503
    code = "model_load_failed"


class PredictionTimeout(EikitError):
    status = 504
    code = "prediction_timeout"


class InsufficientMemory(EikitError):
    status = 507
    code = "insufficient_memory"


class InternalError(EikitError):
    status = 500
    code = "internal_error"


class ConfigurationError(EikitError):
    """The model directory, user script or settings cannot work; raised at start-up."""

    code = "configuration_error"


class NoModelFiles(ConfigurationError):
    """The model directory holds nothing the runtime's default ``model_fn`` can load (on a
    multi-model endpoint, a load request for it is a 404, as SageMaker expects)."""

    code = "no_model_files"


class ModelLoadError(EikitError):
    """Multi-model: a model's ``model_fn`` (or its script) failed; the reason is the message."""

    status = 500
    code = "model_load_failed"


class ModelExists(EikitError):
    """Multi-model: a model of that name is loaded (or loading) already."""

    status = 409
    code = "model_exists"


class NotCompiled(ConfigurationError):
    """A model on a Neuron host that was not compiled for its NeuronCore generation; the
    message holds the ``eikit compile`` command that compiles it."""

    code = "not_compiled"


class UserScriptError(ConfigurationError):
    """The user script is missing, fails to import, or defines hooks that cannot work together."""

    code = "user_script_error"


def toolkit_status(exc: BaseException) -> Optional[int]:
    """The status of a sagemaker-inference ``BaseInferenceToolkitError`` (the real package's
    or eikit's stand-in, recognised by name), which AWS's transformer answers with; None
    for any other exception."""
    if not any(cls.__name__ == "BaseInferenceToolkitError" for cls in type(exc).__mro__):
        return None
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        return status
    return None


def status_of(exc: BaseException) -> int:
    """The HTTP status for any exception: its own if it carries one, 507 for OOM, else 500."""
    if isinstance(exc, EikitError):
        return exc.status
    toolkit = toolkit_status(exc)
    if toolkit is not None:
        return toolkit
    if out_of_memory(exc):
        return 507
    return 500


# Frameworks' out-of-memory errors, recognised by class name so that no framework is
# imported here: torch.cuda.OutOfMemoryError, TensorFlow's ResourceExhaustedError ("OOM
# when allocating tensor"), jax's and others' OutOfMemoryError.
OOM_CLASSES = ("OutOfMemoryError", "ResourceExhaustedError")
OOM_MESSAGES = ("out of memory", "oom when allocating")


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out: a MemoryError, a framework's OOM error, or a
    message that says so (CUDA's "CUDA out of memory" RuntimeError, cuDNN's, MXNet's)."""
    if isinstance(exc, MemoryError):
        return True
    if any(cls.__name__ in OOM_CLASSES for cls in type(exc).__mro__):
        return True
    text = str(exc).lower()
    return any(message in text for message in OOM_MESSAGES)


def code_of(exc: BaseException) -> str:
    if isinstance(exc, EikitError):
        return exc.code
    if toolkit_status(exc) is not None:
        return InferenceError.code
    if status_of(exc) == 507:
        return InsufficientMemory.code
    return InternalError.code


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return "%s... (%d more characters)" % (text[:limit], len(text) - limit)


def client_message(exc: BaseException, limit: int = 500) -> str:
    """What the client may see of an exception: its own message for ours, else the type and
    the last line of the message (framework errors embed tracebacks in the text); at most
    ``limit`` characters, as a message may quote the request (a CSV cell, a header)."""
    if isinstance(exc, EikitError):
        return shorten(exc.message, limit)
    if toolkit_status(exc) is not None:
        return shorten(str(getattr(exc, "message", "") or type(exc).__name__), limit)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return shorten("%s: %s" % (type(exc).__name__, last) if last else type(exc).__name__, limit)


def error_body(message: str, code: str) -> bytes:
    """The JSON body of every error response; never a traceback."""
    import json

    return json.dumps({"error": message, "code": code}).encode()
