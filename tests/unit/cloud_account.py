"""What a cloud test gets: a fresh account on the moto server (tests/unit/cloud_server.py),
boto3 and eikit clients to it, a clock that moves only when the code under test sleeps, and
an EI user's endpoint, images, model data, autoscaling and alarms to migrate.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from eikit.cloud.aws import Clients, Waiter
from tests.unit.cloud_server import (
    ACCOUNT,
    BUCKET,
    DIMENSION,
    REGION,
    REGISTRY,
    ROLE,
    STAND_IN,
    Server,
    StandIn,
)

boto3 = pytest.importorskip("boto3")


# --- what a test gets ----------------------------------------------------------------------


@dataclass
class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    now: float = 1000.0
    sleeps: List[float] = field(default_factory=list)
    interrupt_after: Optional[int] = None  # raise KeyboardInterrupt on this sleep (1-based)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.interrupt_after is not None and len(self.sleeps) >= self.interrupt_after:
            self.interrupt_after = None
            raise KeyboardInterrupt
        self.now += seconds


@dataclass
class Aws:
    url: str
    stand_in: StandIn
    session: Any
    clients: Clients
    time: FakeTime
    progress: io.StringIO

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    @property
    def sm(self) -> Any:
        return self.clients.client("sagemaker")

    @property
    def autoscaling(self) -> Any:
        return self.clients.client("application-autoscaling")

    @property
    def cloudwatch(self) -> Any:
        return self.clients.client("cloudwatch")

    @property
    def ecr(self) -> Any:
        return self.clients.client("ecr")

    @property
    def s3(self) -> Any:
        return self.clients.client("s3")

    def waiter(self) -> Waiter:
        return Waiter(
            clock=self.time.clock, sleep=self.time.sleep, interval=30.0, out=self.progress
        )

    def env(self) -> Dict[str, str]:
        """The environment of an ``eikit`` subprocess that talks to this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(ENV, AWS_ENDPOINT_URL=self.url)
        return env


ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def moto_aws(monkeypatch: pytest.MonkeyPatch, running: Server) -> Iterator[Aws]:
    """A fresh account on the moto server ``running``; fake credentials only. A plain
    generator: the ``aws`` fixture (tests/conftest.py) is made from it."""
    running.reset()
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    session = boto3.session.Session(region_name=REGION)
    clients = Clients(region=REGION, session=session)
    yield Aws(running.url, STAND_IN, session, clients, FakeTime(), io.StringIO())
    hold = STAND_IN.hold
    if hold is not None:
        hold.release.set()


# --- an EI user's account --------------------------------------------------------------------

WEIGHTS = b"the user's TorchScript model"  # model.pt of the archives made here


def model_archive(model: bytes = WEIGHTS, compiled_for: Tuple[str, ...] = ()) -> bytes:
    """A model.tar.gz as eikit package writes it (entries sorted): model.pt, and an
    eikit-neuron.json saying it is compiled for ``compiled_for`` (no graphs: nothing here
    loads them)."""
    files: Dict[str, bytes] = {"code/inference.py": b"# the user's script\n", "model.pt": model}
    if compiled_for:
        manifest = {
            "format": 1,
            "framework": "pytorch",
            "source": "model.pt",
            "source_sha256": hashlib.sha256(model).hexdigest(),
            "compiled": {
                g: {
                    "generation": g,
                    "batch_sizes": [1],
                    "graphs": {"1": "neuron/%s/model-b1.pt" % g},
                    "inputs": [{"shape": [4], "dtype": "float32"}],
                    "package": "torch-neuron",
                    "package_version": "test",
                    "compiler": "neuron-cc",
                    "compiler_version": "test",
                    "framework_version": "test",
                    "parity": {"checked": True},
                    "how": "in-process",
                }
                for g in compiled_for
            },
        }
        files["eikit-neuron.json"] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def push_image(aws: Aws, tag: str, platforms: Optional[List[str]] = None) -> None:
    """An image in moto's ECR under eikit:TAG; ``platforms``: an image index of those."""
    names = [r["repositoryName"] for r in aws.ecr.describe_repositories()["repositories"]]
    if "eikit" not in names:
        aws.ecr.create_repository(repositoryName="eikit")
    if platforms:
        manifest: Dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:%064x" % i,
                    "size": 100,
                    "platform": {"os": p.split("/")[0], "architecture": p.split("/")[1]},
                }
                for i, p in enumerate(platforms)
            ],
        }
        media = manifest["mediaType"]
    else:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": "sha256:" + "0" * 64},
            "layers": [],
        }
        media = manifest["mediaType"]
    aws.ecr.put_image(
        repositoryName="eikit",
        imageManifest=json.dumps(manifest),
        imageTag=tag,
        imageManifestMediaType=media,
    )


def eia_endpoint(
    aws: Aws,
    name: str = "flowers",
    image: str = REGISTRY + ":pytorch-1.5-eia-py38",
    variants: int = 1,
    count: int = 2,
    capture: bool = True,
    upload: bool = True,
    shadow: bool = False,
    archive: Optional[bytes] = None,
) -> None:
    """An endpoint as an EI user has it: ml.m5.large + ml.eia2.medium (and data capture and a
    KMS key, unless ``capture`` is False: moto then answers ``DataCaptureConfig: {}``)."""
    sm = aws.sm
    data = "s3://%s/%s/model.tar.gz" % (BUCKET, name)
    if upload:
        buckets = [b["Name"] for b in aws.s3.list_buckets()["Buckets"]]
        if BUCKET not in buckets:
            aws.s3.create_bucket(Bucket=BUCKET)
        body = model_archive() if archive is None else archive
        aws.s3.put_object(Bucket=BUCKET, Key="%s/model.tar.gz" % name, Body=body)
    sm.create_model(
        ModelName="%s-model" % name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": data,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )
    extra: Dict[str, Any] = {}
    if capture:
        extra["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": 20,
            "DestinationS3Uri": "s3://%s/capture" % BUCKET,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
        extra["KmsKeyId"] = "arn:aws:kms:%s:%s:key/1234" % (REGION, ACCOUNT)
    if shadow:
        extra["ShadowProductionVariants"] = [
            {
                "VariantName": "shadow",
                "ModelName": "%s-model" % name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "AcceleratorType": "ml.eia2.medium",
            }
        ]
    sm.create_endpoint_config(
        EndpointConfigName="%s-config" % name,
        ProductionVariants=[
            {
                "VariantName": "v%d" % (i + 1),
                "ModelName": "%s-model" % name,
                "InitialInstanceCount": count,
                "InstanceType": "ml.m5.large",
                "AcceleratorType": "ml.eia2.medium",
                "InitialVariantWeight": 1.0 / (i + 1),
            }
            for i in range(variants)
        ],
        **extra,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName="%s-config" % name)


def add_scaling(aws: Aws, endpoint: str, variant: str = "v1") -> Dict[str, Any]:
    """A target (1-4 instances), a target-tracking policy and a scheduled action."""
    rid = "endpoint/%s/variant/%s" % (endpoint, variant)
    common = {"ServiceNamespace": "sagemaker", "ResourceId": rid, "ScalableDimension": DIMENSION}
    aws.autoscaling.register_scalable_target(MinCapacity=1, MaxCapacity=4, **common)
    aws.autoscaling.put_scaling_policy(
        PolicyName="invocations",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 70.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
        **common,
    )
    aws.autoscaling.put_scheduled_action(
        ScheduledActionName="nightly",
        Schedule="cron(0 22 * * ? *)",
        ScalableTargetAction={"MinCapacity": 1, "MaxCapacity": 2},
        **common,
    )
    return scaling_of(aws, endpoint, variant)


def add_step_scaling(aws: Aws, endpoint: str, variant: str = "v1") -> str:
    """A step-scaling policy driven by the user's own CloudWatch alarm; the alarm's name."""
    rid = "endpoint/%s/variant/%s" % (endpoint, variant)
    common = {"ServiceNamespace": "sagemaker", "ResourceId": rid, "ScalableDimension": DIMENSION}
    if not aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[rid]
    )["ScalableTargets"]:
        aws.autoscaling.register_scalable_target(MinCapacity=1, MaxCapacity=4, **common)
    arn = aws.autoscaling.put_scaling_policy(
        PolicyName="cpu-step",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            "Cooldown": 120,
        },
        **common,
    )["PolicyARN"]
    alarm = "%s-%s-cpu-high" % (endpoint, variant)
    aws.cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="/aws/sagemaker/Endpoints",
        MetricName="CPUUtilization",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        Statistic="Average",
        Period=60,
        EvaluationPeriods=3,
        Threshold=80.0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[arn],
    )
    return alarm


def scaling_of(aws: Aws, endpoint: str, variant: str = "v1") -> Dict[str, Any]:
    """The scaling settings of one variant, without ARNs and times (to compare)."""
    rid = "endpoint/%s/variant/%s" % (endpoint, variant)
    client = aws.autoscaling
    targets = client.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])
    policies = client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid)
    actions = client.describe_scheduled_actions(ServiceNamespace="sagemaker", ResourceId=rid)
    drop = ("CreationTime", "PolicyARN", "ScalableTargetARN", "ScheduledActionARN", "Alarms")

    def clean(items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return sorted(
            ({k: v for k, v in i.items() if k not in drop} for i in items),
            key=lambda i: json.dumps(i, sort_keys=True, default=str),
        )

    return {
        "targets": clean(targets["ScalableTargets"]),
        "policies": clean(policies["ScalingPolicies"]),
        "scheduled": clean(actions["ScheduledActions"]),
    }


def dead_alarm_actions(aws: Aws) -> List[str]:
    """Alarm actions that name a scaling policy that does not exist: alarms driving nothing."""
    live = {
        p["PolicyARN"]
        for p in aws.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")[
            "ScalingPolicies"
        ]
    }
    dead = []
    for alarm in aws.cloudwatch.describe_alarms()["MetricAlarms"]:
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in alarm.get(key, []):
                if ":scalingPolicy:" in action and action not in live:
                    dead.append("%s -> %s" % (alarm["AlarmName"], action))
    return dead
