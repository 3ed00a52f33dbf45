"""What real SageMaker clients send: boto3's sagemaker-runtime and the SageMaker SDK."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from tests.integration.conftest import expected

boto3 = pytest.importorskip("boto3")


def _runtime_client(url: str):
    """An unsigned sagemaker-runtime client whose requests land on our /invocations."""
    from botocore import UNSIGNED
    from botocore.config import Config

    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 0}),
    )

    def to_container_path(request, **kwargs):
        # SageMaker's front door maps /endpoints/NAME/invocations to the container's path.
        request.url = url + "/invocations"

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", to_container_path)
    return client


def test_boto3_invoke_endpoint_json_npy_and_custom_attributes(tree, start):
    tree.script(
        """
        def output_fn(prediction, accept, context):
            import json
            attrs = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
            name = "X-Amzn-SageMaker-Custom-Attributes"
            context.set_response_header(0, name, "seen=" + str(attrs))
            if accept == "application/x-npy":
                import io, numpy
                out = io.BytesIO()
                numpy.save(out, prediction)
                return out.getvalue(), accept
            return json.dumps(prediction.tolist()), "application/json"
        """
    )
    endpoint = start(tree)
    client = _runtime_client(endpoint.url)
    answer = client.invoke_endpoint(
        EndpointName="local",
        Body=json.dumps([[1, 2, 3, 4]]),
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes="tenant=a",
    )
    assert answer["ContentType"] == "application/json"
    assert json.loads(answer["Body"].read()) == expected([[1, 2, 3, 4]])
    assert answer["CustomAttributes"] == "seen=tenant=a"

    buffer = io.BytesIO()
    np.save(buffer, np.array([[0, 1, 1, 1]], dtype=np.float32))
    answer = client.invoke_endpoint(
        EndpointName="local",
        Body=buffer.getvalue(),
        ContentType="application/x-npy",
        Accept="application/x-npy",
    )
    result = np.load(io.BytesIO(answer["Body"].read()), allow_pickle=False)
    assert result.tolist() == expected([[0, 1, 1, 1]])


def test_boto3_sees_client_errors_as_model_errors(tree, start):
    endpoint = start(tree)
    client = _runtime_client(endpoint.url)
    with pytest.raises(client.exceptions.ClientError) as info:
        client.invoke_endpoint(EndpointName="local", Body=b"x", ContentType="image/png")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 415


def test_sagemaker_sdk_serializers_and_local_runtime_client(tree, start, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    serializers = pytest.importorskip("sagemaker.serializers")
    deserializers = pytest.importorskip("sagemaker.deserializers")
    from sagemaker.local.local_session import LocalSagemakerRuntimeClient

    endpoint = start(tree)
    client = LocalSagemakerRuntimeClient({"local": {"serving_port": endpoint.server.port}})
    rows = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]]
    cases = [
        (serializers.JSONSerializer(), deserializers.JSONDeserializer(), rows),
        (serializers.CSVSerializer(), deserializers.JSONDeserializer(), rows),
        (serializers.NumpySerializer(), deserializers.NumpyDeserializer(), np.array(rows)),
        (serializers.JSONLinesSerializer(), deserializers.JSONLinesDeserializer(), rows),
    ]
    for serializer, deserializer, data in cases:
        accept = deserializer.ACCEPT[0]
        response = client.invoke_endpoint(
            Body=serializer.serialize(data),
            EndpointName="local",
            ContentType=serializer.CONTENT_TYPE,
            Accept=accept,
        )
        result = deserializer.deserialize(response["Body"], response["ContentType"])
        assert np.allclose(np.asarray(result, dtype=np.float32), expected(rows)), serializer
