"""TF Serving over its REST API, with the standard library only: the client for images whose
Python has no TensorFlow (the eia image: Python 3.8 next to the EI ``tensorflow_model_server``;
tensorflow-serving-api needs TensorFlow's protos), or where ``EIKIT_TFS_CLIENT=rest``.

The REST body is what the executor was given, so TF Serving itself reads the JSON; its
``{"error": ...}`` answers keep their HTTP status, which TF Serving derives from its gRPC
code as eikit's gRPC client does (404, 400, 503, 504, 429 for memory -> 507 here).
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any, Dict, Optional, Tuple

from eikit.errors import (
    BadRequest,
    EikitError,
    InsufficientMemory,
    InternalError,
    ModelNotFound,
    ModelNotReady,
    PredictionTimeout,
)
from eikit_tensorflow.tensor_protos import SignatureInfo, signature_info_json

# TF Serving's HTTP status for each gRPC code (http_server.cc, ToHTTPStatusCode); the gRPC
# client maps codes through it too, so both clients answer a refusal with one status.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# TF Serving's HTTP status -> eikit error (anything else: 500)
ERRORS = {
    404: ModelNotFound,
    400: BadRequest,
    503: ModelNotReady,
    504: PredictionTimeout,
    429: InsufficientMemory,  # RESOURCE_EXHAUSTED: TensorFlow's OOM, eikit's 507
}


class Unreachable(ModelNotReady):
    """No TF Serving answered on the port (not started yet, or gone)."""


def rest_path(model: str, version: Optional[int], verb: Optional[str] = None) -> str:
    path = "/v1/models/%s" % model
    if version is not None:
        path += "/versions/%d" % version
    return path + (":" + verb if verb else "")


class RestClient:
    """A keep-alive connection to one TF Serving REST port on 127.0.0.1."""

    name = "rest"

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self._connection: Optional[http.client.HTTPConnection] = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            connection.connect()
            # one request, one write: no waiting on Nagle's algorithm and a delayed ACK
            assert connection.sock is not None
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connection = connection
        assert self._connection.sock is not None
        self._connection.sock.settimeout(timeout)
        return self._connection

    def _exchange(
        self, verb: str, path: str, body: Optional[bytes], timeout: float
    ) -> Tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):  # a kept-alive connection TF Serving closed: once more
            try:
                connection = self._connect(timeout)
                connection.request(verb, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.close()
                if isinstance(exc, TimeoutError) or "timed out" in str(exc):
                    raise PredictionTimeout(
                        "TF Serving did not answer within %gs" % timeout
                    ) from None
                if attempt == 2 or isinstance(exc, ConnectionRefusedError):
                    raise Unreachable("TF Serving is not answering: %s" % exc) from None
        raise AssertionError("unreachable")

    def _json(self, verb: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        status, raw = self._exchange(verb, path, data, self.timeout if timeout is None else timeout)
        try:
            answer = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            raise InternalError(
                "TF Serving answered %d with a body that is not JSON" % status
            ) from None
        if status != 200:
            message = answer.get("error", "") if isinstance(answer, dict) else ""
            raise error_of(status, message or raw.decode("utf-8", "replace")[:300])
        return answer

    def version_states(self, model: str, timeout: float = 5.0) -> Dict[int, Tuple[str, str]]:
        answer = self._json("GET", rest_path(model, None), timeout=timeout)
        return {
            int(item["version"]): (
                str(item.get("state", "UNKNOWN")),
                str(item.get("status", {}).get("error_message", "")),
            )
            for item in answer.get("model_version_status", [])
        }

    def signatures(self, model: str, version: int) -> Dict[str, SignatureInfo]:
        answer = self._json("GET", rest_path(model, version) + "/metadata")
        found = answer.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
        return {name: signature_info_json(name, sig) for name, sig in found.items()}

    def request(
        self,
        model: str,
        version: int,
        method: str,
        body: Dict[str, Any],
        signature: Optional[SignatureInfo] = None,
    ) -> Dict[str, Any]:
        return self._json("POST", rest_path(model, version, method), body)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def error_of(status: int, message: str) -> EikitError:
    """A TF Serving refusal (its HTTP status and message) as eikit's error."""
    return ERRORS.get(status, InternalError)("TF Serving: %s" % message)


def grpc_error(code: str, message: str) -> EikitError:
    """The same for a gRPC status code name: NOT_FOUND 404, INVALID_ARGUMENT and
    FAILED_PRECONDITION 400, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, else 500."""
    return error_of(HTTP_STATUS.get(code, 500), message)
