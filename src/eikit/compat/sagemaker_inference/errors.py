"""The exceptions scripts raise or catch. eikit answers ``BaseInferenceToolkitError`` (and
``GenericInferenceToolkitError``) with its ``status_code`` and ``message``, as AWS's
transformer answers them; anything else a script raises is a 500."""

from __future__ import annotations

from typing import Any, Optional


class ClientError(Exception):
    pass


class UnsupportedFormatError(Exception):
    def __init__(self, content_type: str, **kwargs: Any) -> None:
        self._message = (
            "Content type %s is not supported by this framework. Please implement input_fn "
            "to deserialize the request data or an output_fn to serialize the response."
            % content_type
        )
        super().__init__(self._message, **kwargs)


class BaseInferenceToolkitError(Exception):
    def __init__(self, status_code: int, message: str, phrase: str) -> None:
        self.status_code = status_code
        self.message = message
        self.phrase = phrase
        super().__init__(status_code, message, phrase)


class GenericInferenceToolkitError(BaseInferenceToolkitError):
    def __init__(
        self, status_code: int, message: Optional[str] = None, phrase: Optional[str] = None
    ) -> None:
        message = message or "Invalid Request"
        super().__init__(status_code, message, phrase or message)
