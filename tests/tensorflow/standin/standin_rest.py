"""The stand-in's REST API, as TF Serving's ``http_rest_api_handler.cc`` serves it: the
JSON body made into the gRPC request (eikit's conversion), handled by the same servables
as the gRPC services, the answer written back as JSON; errors ``{"error": message}`` with
the HTTP status TF Serving derives from the gRPC code (``http_server.cc``)."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple

from google.protobuf import json_format
from standin_rpc import classification_result, metadata, regression_result
from standin_servables import Failure, Servables, examples_call, predict
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    predict_pb2,
    regression_pb2,
)

from eikit.errors import EikitError
from eikit_tensorflow import grpc_client
from eikit_tensorflow.rest_client import HTTP_STATUS
from eikit_tensorflow.tensor_protos import signature_info

PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<method>predict|classify|regress))?$"
)


def handle(servables: Servables, verb: str, path: str, body: bytes) -> Tuple[int, Dict[str, Any]]:
    match = PATH.match(path)
    if match is None or (verb == "POST") != bool(match.group("method")):
        return 404, {"error": "Malformed request: %s %s" % (verb, path)}
    name = match.group("name")
    version = int(match.group("version")) if match.group("version") else None
    try:
        if verb == "GET" and match.group("metadata"):
            request = get_model_metadata_pb2.GetModelMetadataRequest()
            request.model_spec.name = name
            if version is not None:
                request.model_spec.version.value = version
            request.metadata_field.append("signature_def")
            return 200, json_format.MessageToDict(
                metadata(servables, request), preserving_proto_field_name=True
            )
        if verb == "GET":
            return 200, {
                "model_version_status": [
                    {
                        "version": str(number),
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                    for number in servables.status(name, version)
                ]
            }
        return 200, _post(servables, name, version, match.group("method"), body)
    except Failure as exc:
        return HTTP_STATUS.get(exc.code, 500), {"error": exc.message}
    except EikitError as exc:  # the JSON conversion refused the body
        return exc.status, {"error": exc.message}


def _post(
    servables: Servables, name: str, version: Optional[int], method: str, body: bytes
) -> Dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8")) if body else None
    except ValueError as exc:
        raise Failure("INVALID_ARGUMENT", "JSON Parse error: %s" % exc) from None
    if document is None:
        raise Failure("INVALID_ARGUMENT", "JSON Parse error: The document is empty")
    if not isinstance(document, dict):
        raise Failure("INVALID_ARGUMENT", "JSON Value: %s Is not object" % body[:256].decode())
    servable = servables.get(name, version)
    if method == "predict":
        signame = document.get("signature_name") or "serving_default"
        if signame not in servable.signature_defs:
            raise Failure(
                "INVALID_ARGUMENT",
                'Serving signature name: "%s" not found in signature def' % signame,
            )
        info = signature_info(signame, servable.signature_defs[signame])
        request, form = grpc_client.predict_request(name, servable.version, document, info)
        response = predict_pb2.PredictResponse()
        predict(servables, request, response)
        return grpc_client.predict_answer(response.outputs, form)
    request = grpc_client.examples_request(name, servable.version, method, document)
    if method == "classify":
        result = classification_pb2.ClassificationResponse()
        classification_result(examples_call(servables, request, method), result)
        return grpc_client.classify_answer(result.result)
    regression = regression_pb2.RegressionResponse()
    regression_result(examples_call(servables, request, method), regression)
    return grpc_client.regress_answer(regression.result)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms a request). TF Serving writes once.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = handle(self.server.servables, verb, self.path, body)
        data = json.dumps(payload, indent=4).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")


def serve_rest(servables: Servables, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    server.servables = servables  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="rest", daemon=True).start()
    return server
