"""The stand-in's gRPC services, from ``tensorflow_serving.apis``' generated servicers."""

from __future__ import annotations

from concurrent import futures
from typing import Any, Callable

import grpc
from standin_servables import Failure, Servables, examples_call, predict
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)


def _guarded(call: Callable[[Any, Any], Any]) -> Callable[[Any, Any, Any], Any]:
    def method(self: Any, request: Any, context: Any) -> Any:
        try:
            return call(self, request)
        except Failure as exc:
            context.abort(getattr(grpc.StatusCode, exc.code), exc.message)

    return method


def classification_result(results: Any, response: Any) -> None:
    for row in results["results"]:
        classes = response.result.classifications.add()
        for label, score in row:
            classes.classes.add(label=label, score=score)


def regression_result(results: Any, response: Any) -> None:
    for value in results["results"]:
        response.result.regressions.add(value=value)


def metadata(servables: Servables, request: Any) -> Any:
    servable = servables.get(
        request.model_spec.name,
        request.model_spec.version.value if request.model_spec.HasField("version") else None,
    )
    if list(request.metadata_field) != ["signature_def"]:
        raise Failure(
            "INVALID_ARGUMENT",
            "Metadata field %s is not supported" % ",".join(request.metadata_field),
        )
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    found = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in servable.signature_defs.items():
        found.signature_def[name].CopyFrom(signature)
    response.metadata["signature_def"].Pack(found)
    return response


def status(servables: Servables, request: Any) -> Any:
    version = request.model_spec.version.value if request.model_spec.HasField("version") else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for number in servables.status(request.model_spec.name, version):
        item = response.model_version_status.add(version=number)
        item.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return response


class Predictions(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, servables: Servables) -> None:
        self.servables = servables

    @_guarded
    def Predict(self, request: Any) -> Any:  # noqa: N802 - the service's names
        response = predict_pb2.PredictResponse()
        predict(self.servables, request, response)
        return response

    @_guarded
    def Classify(self, request: Any) -> Any:  # noqa: N802
        response = classification_pb2.ClassificationResponse()
        classification_result(examples_call(self.servables, request, "classify"), response)
        return response

    @_guarded
    def Regress(self, request: Any) -> Any:  # noqa: N802
        response = regression_pb2.RegressionResponse()
        regression_result(examples_call(self.servables, request, "regress"), response)
        return response

    @_guarded
    def GetModelMetadata(self, request: Any) -> Any:  # noqa: N802
        return metadata(self.servables, request)


class Models(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, servables: Servables) -> None:
        self.servables = servables

    @_guarded
    def GetModelStatus(self, request: Any) -> Any:  # noqa: N802
        return status(self.servables, request)


def serve_grpc(servables: Servables, port: int) -> Any:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        Predictions(servables), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(servables), server)
    if server.add_insecure_port("127.0.0.1:%d" % port) == 0:  # older grpcio; newer raise
        raise RuntimeError("could not bind gRPC port %d" % port)
    server.start()
    return server
