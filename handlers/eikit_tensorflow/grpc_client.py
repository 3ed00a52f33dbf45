"""TF Serving over gRPC: REST JSON requests sent as ``PredictRequest`` /
``ClassificationRequest`` / ``RegressionRequest`` through ``tensorflow_serving.apis``' stubs,
answers written back as TF Serving's REST API writes them.

The JSON on both sides goes through the in-process path's own conversion (``tensors``,
``examples``): the request's arrays (each in its signature input's dtype, by TF Serving's
JSON rules) become ``TensorProto``s (``tensor_protos``), the answer's tensors become
``{"predictions"}`` / ``{"outputs"}`` / ``{"results"}``. So the same request answers the same
JSON here, through a TF Serving binary, as in-process.

``grpc`` and ``tensorflow_serving`` (which needs TensorFlow's protos, hence TensorFlow) are
imported when a client is made, never at import: ``available()`` says whether they can be.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Dict, List, Tuple

import numpy as np

from eikit.errors import BadRequest
from eikit_tensorflow import examples, tensors
from eikit_tensorflow.rest_client import grpc_error
from eikit_tensorflow.tensor_protos import SignatureInfo, from_array, signature_info, to_array


def available() -> bool:
    """Whether the gRPC client's packages import here (grpcio, tensorflow-serving-api, and
    the TensorFlow it takes its protos from)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("grpc", "tensorflow_serving", "tensorflow")
    )


# --- requests and answers (also the stand-in TF Serving's REST API) ----------------------


def _spec(request: Any, model: str, version: int, body: Dict[str, Any]) -> None:
    request.model_spec.name = model
    request.model_spec.version.value = version
    name = body.get("signature_name", "")
    request.model_spec.signature_name = name if isinstance(name, str) else ""


def predict_request(
    model: str, version: int, body: Dict[str, Any], signature: SignatureInfo
) -> Tuple[Any, str]:
    """(the ``PredictRequest``, ``row`` or ``columnar``: the form its answer takes)."""
    from tensorflow_serving.apis import predict_pb2

    form, arrays = tensors.request_arrays(body, signature.inputs)
    request = predict_pb2.PredictRequest()
    _spec(request, model, version, body)
    for name, array in arrays.items():
        request.inputs[name].CopyFrom(from_array(array, signature.dtypes[name]))
    return request, form


def predict_answer(outputs: Any, form: str) -> Dict[str, Any]:
    """A PredictResponse's ``outputs`` as TF Serving's REST answer in ``form``."""
    arrays = {name: to_array(tensor) for name, tensor in outputs.items()}
    if not arrays:
        raise BadRequest("Cannot convert empty tensor map to JSON")
    return tensors.row_answer(arrays) if form == "row" else tensors.columnar_answer(arrays)


def examples_request(model: str, version: int, method: str, body: Dict[str, Any]) -> Any:
    """A Classification/RegressionRequest: each example serialized over the context, as TF
    Serving merges them (the context's features, then the example's)."""
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    serialized = examples.serialized_examples(body, method)
    kind = (
        classification_pb2.ClassificationRequest
        if method == "classify"
        else regression_pb2.RegressionRequest
    )
    request = kind()
    _spec(request, model, version, body)
    for item in serialized:
        request.input.example_list.examples.add().CopyFrom(example_pb2.Example.FromString(item))
    return request


def classify_answer(result: Any) -> Dict[str, Any]:
    """A ClassificationResult as ``{"results": [[[label, score], ...], ...]}``."""
    rows = [list(item.classes) for item in result.classifications]
    if not rows:
        raise BadRequest("Cannot convert empty ClassificationResults to JSON")
    width = len(rows[0])  # TF Serving's rows come from one [batch, classes] tensor
    labels = np.array([[c.label.encode("utf-8") for c in row] for row in rows], dtype=object)
    scores = np.array([[c.score for c in row] for row in rows], dtype=np.float32)
    return examples.classify_results(
        {examples.CLASSES: labels.reshape(len(rows), width), examples.SCORES: scores},
        len(rows),
    )


def regress_answer(result: Any) -> Dict[str, Any]:
    values = np.array([item.value for item in result.regressions], dtype=np.float32)
    if not values.size:
        raise BadRequest("Cannot convert empty RegressionResults to JSON")
    return examples.regress_results({examples.OUTPUTS: values}, values.size)


# --- the client ---------------------------------------------------------------------------

STATES = {0: "UNKNOWN", 10: "START", 20: "LOADING", 30: "AVAILABLE", 40: "UNLOADING", 50: "END"}


class GrpcClient:
    """One channel to one TF Serving process (``127.0.0.1:port``); calls time out after
    ``timeout`` seconds (the prediction timeout: the pool replaces the worker then)."""

    name = "grpc"

    def __init__(self, port: int, timeout: float) -> None:
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self._grpc = grpc
        self.timeout = timeout
        options = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
            # The channel exists before the binary listens: reconnect within a second of it
            # doing so (gRPC's default backoff grows to 120 s, delaying start-up by minutes).
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        self._channel = grpc.insecure_channel("127.0.0.1:%d" % port, options=options)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def _call(self, method: Any, request: Any, timeout: float) -> Any:
        try:
            return method(request, timeout=timeout)
        except self._grpc.RpcError as exc:
            code = exc.code()
            raise grpc_error(
                code.name if code is not None else "UNKNOWN", exc.details() or ""
            ) from None
        except ValueError as exc:  # a message the stubs cannot serialize
            raise BadRequest("TF Serving request: %s" % exc) from None

    def version_states(self, model: str, timeout: float = 5.0) -> Dict[int, Tuple[str, str]]:
        """version -> (state, error message) from ModelService/GetModelStatus."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        response = self._call(self._models.GetModelStatus, request, timeout)
        return {
            int(item.version): (STATES.get(item.state, str(item.state)), item.status.error_message)
            for item in response.model_version_status
        }

    def signatures(self, model: str, version: int) -> Dict[str, SignatureInfo]:
        """The version's SignatureDefs (PredictionService/GetModelMetadata)."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = model
        request.model_spec.version.value = version
        request.metadata_field.append("signature_def")
        response = self._call(self._predictions.GetModelMetadata, request, self.timeout)
        found = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(found)
        return {name: signature_info(name, sig) for name, sig in found.signature_def.items()}

    def request(
        self,
        model: str,
        version: int,
        method: str,
        body: Dict[str, Any],
        signature: SignatureInfo,
    ) -> Dict[str, Any]:
        if method == "predict":
            request, form = predict_request(model, version, body, signature)
            response = self._call(self._predictions.Predict, request, self.timeout)
            return predict_answer(response.outputs, form)
        request = examples_request(model, version, method, body)
        if method == "classify":
            response = self._call(self._predictions.Classify, request, self.timeout)
            return classify_answer(response.result)
        response = self._call(self._predictions.Regress, request, self.timeout)
        return regress_answer(response.result)

    def close(self) -> None:
        self._channel.close()


__all__: List[str] = ["GrpcClient", "available"]
