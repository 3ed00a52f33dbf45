"""The moto server the cloud tests use, and its stand-ins (tests/unit/cloud_server.py),
held to the rules they copy from AWS."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, List

import pytest

from tests.unit.cloud_account import Aws, add_scaling, eia_endpoint
from tests.unit.cloud_server import EI_REFUSAL, REGISTRY, ROLE

ClientError = pytest.importorskip("botocore.exceptions").ClientError


def next_config(aws: Aws, name: str = "next", accelerator: bool = False, **variant: Any) -> None:
    spec = {"VariantName": "v1", "ModelName": "flowers-model", "InitialInstanceCount": 2,
            "InstanceType": "ml.c5.xlarge"}  # fmt: skip
    spec.update(variant)
    if accelerator:
        spec["AcceleratorType"] = "ml.eia2.medium"
    aws.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[spec])


def statuses(aws: Aws, count: int) -> List[str]:
    seen = []
    for _ in range(count):
        answer = aws.sm.describe_endpoint(EndpointName="flowers")
        pending = answer.get("PendingDeploymentSummary")
        stage = pending["ProductionVariants"][0]["VariantStatus"][0]["Status"] if pending else "-"
        seen.append("%s/%s" % (answer["EndpointStatus"], stage))
    return seen


def test_moto_answers_an_empty_data_capture_config(aws: Aws) -> None:
    """What broke `eikit migrate` against a moto server: a setting never made reads `{}`."""
    eia_endpoint(aws, capture=False)
    config = aws.sm.describe_endpoint_config(EndpointConfigName="flowers-config")
    assert config["DataCaptureConfig"] == {}


def test_update_endpoint_passes_through_updating(aws: Aws) -> None:
    eia_endpoint(aws)
    next_config(aws)
    aws.sm.update_endpoint(EndpointName="flowers", EndpointConfigName="next")
    seen = statuses(aws, 1)
    with pytest.raises(ClientError, match="in-progress"):
        aws.sm.update_endpoint(EndpointName="flowers", EndpointConfigName="next")
    seen += statuses(aws, 4)
    assert seen == ["Updating/Creating", "Updating/Creating", "Updating/ActivatingTraffic",
                    "Updating/ActivatingTraffic", "InService/-"]  # fmt: skip
    after = aws.sm.describe_endpoint(EndpointName="flowers")
    assert after["EndpointConfigName"] == "next"
    assert after["ProductionVariants"][0]["CurrentInstanceCount"] == 2


def test_canary_deployment_bakes_and_rolls_back_on_an_alarm(aws: Aws) -> None:
    eia_endpoint(aws)
    next_config(aws)
    aws.cloudwatch.put_metric_alarm(
        AlarmName="errors", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=0.01,
        ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 600,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            },
            "TerminationWaitInSeconds": 600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors"}]},
    }
    aws.sm.update_endpoint(
        EndpointName="flowers", EndpointConfigName="next", DeploymentConfig=deployment
    )
    seen = statuses(aws, 9)
    assert seen[-1] == "Updating/Baking"
    assert "Updating/ActivatingTraffic" in seen
    aws.cloudwatch.set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="test")
    after = aws.sm.describe_endpoint(EndpointName="flowers")
    assert (after["EndpointStatus"], after["EndpointConfigName"]) == ("InService", "flowers-config")
    assert "alarm errors" in after["FailureReason"]


def test_update_of_a_scaled_variant_is_refused_when_the_instance_type_changes(aws: Aws) -> None:
    eia_endpoint(aws)
    add_scaling(aws, "flowers")
    next_config(aws)
    with pytest.raises(ClientError, match="automatic scaling"):
        aws.sm.update_endpoint(EndpointName="flowers", EndpointConfigName="next")
    next_config(aws, "same-type", InstanceType="ml.m5.large")  # only the model may change
    aws.stand_in.ei_refused = False
    aws.sm.update_endpoint(EndpointName="flowers", EndpointConfigName="same-type")


def test_an_ei_config_is_refused(aws: Aws) -> None:
    eia_endpoint(aws)
    next_config(aws, accelerator=True, InstanceType="ml.m5.large")
    with pytest.raises(ClientError) as caught:
        aws.sm.update_endpoint(EndpointName="flowers", EndpointConfigName="next")
    assert EI_REFUSAL in str(caught.value)


def test_invocations_go_to_the_fleets_by_traffic_share(aws: Aws) -> None:
    eia_endpoint(aws)
    new_image = REGISTRY + ":pytorch-2.13-cpu-py311"
    aws.sm.create_model(
        ModelName="new-model", ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": new_image, "ModelDataUrl": "s3://b/m.tar.gz"},
    )  # fmt: skip
    next_config(aws, ModelName="new-model")
    aws.stand_in.fleets[REGISTRY + ":pytorch-1.5-eia-py38"] = lambda b, c, a: (b"old", "text/plain")
    aws.stand_in.fleets[new_image] = lambda b, c, a: (b"new", "text/plain")
    runtime = aws.client("sagemaker-runtime")

    def answers(count: int) -> List[bytes]:
        return [
            runtime.invoke_endpoint(EndpointName="flowers", Body=b"x", ContentType="text/plain")[
                "Body"
            ].read()
            for _ in range(count)
        ]

    assert answers(2) == [b"old", b"old"]
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 60,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            }
        }
    }
    aws.sm.update_endpoint(
        EndpointName="flowers", EndpointConfigName="next", DeploymentConfig=deployment
    )
    statuses(aws, 4)  # Creating -> ActivatingTraffic at 50%
    assert sorted(answers(4)) == [b"new", b"new", b"old", b"old"]
    statuses(aws, 20)
    assert answers(2) == [b"new", b"new"]


def test_service_quotas_for_sagemaker(aws: Aws) -> None:
    aws.stand_in.quotas = {"ml.c5.xlarge for endpoint usage": 4.0}
    quotas = aws.client("service-quotas").list_service_quotas(ServiceCode="sagemaker")["Quotas"]
    assert [(q["QuotaName"], q["Value"]) for q in quotas] == [
        ("ml.c5.xlarge for endpoint usage", 4.0)
    ]


def test_notebook_update_needs_stopped(aws: Aws) -> None:
    aws.sm.create_notebook_instance(
        NotebookInstanceName="nb", InstanceType="ml.t2.medium", RoleArn=ROLE,
        AcceleratorTypes=["ml.eia2.medium"],
    )  # fmt: skip
    aws.stand_in.set_notebook_status("nb", "InService")
    with pytest.raises(ClientError, match="Stopped"):
        aws.sm.update_notebook_instance(NotebookInstanceName="nb", InstanceType="ml.t3.large")


def test_a_subprocess_reaches_the_same_server(aws: Aws) -> None:
    eia_endpoint(aws)
    code = (
        "import boto3, json; sm = boto3.client('sagemaker'); "
        "print(json.dumps(sm.describe_endpoint(EndpointName='flowers')['EndpointStatus']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=aws.env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == "InService"


def test_endpoint_configs_take_the_services_instance_types(aws: Aws) -> None:
    """moto's own list has no ml.inf2.* or ml.trn1.*; the service's (botocore's) does."""
    eia_endpoint(aws)
    for name, instance_type in (("inf2", "ml.inf2.xlarge"), ("trn1", "ml.trn1.2xlarge")):
        next_config(aws, name, InstanceType=instance_type)
    with pytest.raises(ClientError, match="'ml.zz9.large' at 'instanceType'"):
        next_config(aws, "bad", InstanceType="ml.zz9.large")


def test_s3_requests_are_recorded_by_operation(aws: Aws) -> None:
    since = len(aws.stand_in.calls)
    aws.s3.create_bucket(Bucket="bucket")
    aws.s3.put_object(Bucket="bucket", Key="m/model.tar.gz", Body=b"x")
    aws.s3.head_object(Bucket="bucket", Key="m/model.tar.gz")
    aws.s3.get_object(Bucket="bucket", Key="m/model.tar.gz")["Body"].read()
    aws.s3.list_objects_v2(Bucket="bucket")
    assert aws.stand_in.calls[since:] == [
        "create_bucket", "put_object", "head_object", "get_object", "list_objects_v2"]  # fmt: skip


def test_a_compilation_job_answers_as_the_service_given_to_it(aws: Aws) -> None:
    request = {"CompilationJobName": "job", "RoleArn": ROLE,
               "InputConfig": {"S3Uri": "s3://b/in.tar.gz", "DataInputConfig": "{}",
                               "Framework": "PYTORCH"},
               "OutputConfig": {"S3OutputLocation": "s3://b/out/", "TargetDevice": "ml_inf1"},
               "StoppingCondition": {"MaxRuntimeInSeconds": 60}}  # fmt: skip
    aws.sm.create_compilation_job(**request)
    job = aws.sm.describe_compilation_job(CompilationJobName="job")
    assert job["CompilationJobStatus"] == "COMPLETED"  # moto's: at once, nothing compiled
    aws.stand_in.neo = lambda job: dict(job, CompilationJobStatus="INPROGRESS")
    job = aws.sm.describe_compilation_job(CompilationJobName="job")
    assert job["CompilationJobStatus"] == "INPROGRESS"
