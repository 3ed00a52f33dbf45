"""moto-backed AWS for the cloud tests, and the stand-ins where moto 5 stops short.

moto 5 implements CreateModel, CreateEndpointConfig, CreateEndpoint, DescribeEndpoint,
notebook instances and Application Auto Scaling, but not UpdateEndpoint or
UpdateNotebookInstance, and every state change it does make is instant (no ``Updating``,
``Stopping`` or ``Pending``). ``SageMakerStandIn`` is moto's own client plus those two calls,
written against moto's backend objects, with the refusals AWS documents (an endpoint that is
not InService, a variant with autoscaling, a notebook that is not Stopped) and the states
AWS passes through, held for a set number of DescribeX calls. Everything else is moto.
The tests of this module check the stand-in itself against those rules.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from botocore.exceptions import ClientError  # noqa: E402

from eikit.cloud.aws import Clients, Waiter  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = "arn:aws:iam::%s:role/SageMakerRole" % ACCOUNT
REGISTRY = "%s.dkr.ecr.%s.amazonaws.com/eikit" % (ACCOUNT, REGION)
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def _refuse(operation: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)


@dataclass
class Pending:
    """An update SageMaker is working on: what it ends as after ``polls`` DescribeEndpoint."""

    config: str
    polls: int
    outcome: str  # "ok", "back" (InService on the old config), "failed" (status Failed)
    reason: str = ""


class SageMakerStandIn:
    """moto's SageMaker client plus UpdateEndpoint / UpdateNotebookInstance and slow states."""

    def __init__(self, client: Any, autoscaling: Any, polls: int = 2) -> None:
        self._client = client
        self._autoscaling = autoscaling
        self.polls = polls
        self.calls: List[str] = []
        self.pending: Dict[str, Pending] = {}
        self.notebook_pending: Dict[str, List[str]] = {}
        self.update_outcomes: List[str] = []  # next UpdateEndpoint outcomes, in order
        self.refuse_updates = 0  # refuse this many UpdateEndpoint calls outright

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attr(*args, **kwargs)

        return recorded

    @property
    def backend(self) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[ACCOUNT][REGION]

    # --- endpoints -----------------------------------------------------------------

    def update_endpoint(self, EndpointName: str, EndpointConfigName: str, **_: Any) -> Any:
        self.calls.append("update_endpoint")
        endpoint = self.backend.endpoints.get(EndpointName)
        if endpoint is None:
            raise _refuse("UpdateEndpoint", "Could not find endpoint %s." % EndpointName)
        if endpoint.endpoint_status != "InService":
            raise _refuse("UpdateEndpoint", "Cannot update in-progress endpoint")
        if EndpointConfigName not in self.backend.endpoint_configs:
            raise _refuse(
                "UpdateEndpoint", "Could not find endpoint configuration %s." % EndpointConfigName
            )
        ids = [
            "endpoint/%s/variant/%s" % (EndpointName, v["VariantName"])
            for v in endpoint.production_variants
        ]
        scaled = self._autoscaling.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=ids, ScalableDimension=DIMENSION
        )["ScalableTargets"]
        if scaled:
            raise _refuse(
                "UpdateEndpoint",
                "The variant(s) %s include automatic scaling; deregister the scalable target "
                "before changing the instance type" % [t["ResourceId"] for t in scaled],
            )
        if self.refuse_updates:
            self.refuse_updates -= 1
            raise _refuse("UpdateEndpoint", "Instance type not available (stand-in refusal)")
        outcome = self.update_outcomes.pop(0) if self.update_outcomes else "ok"
        reason = "" if outcome == "ok" else "The primary container did not pass the ping check"
        endpoint.endpoint_status = "Updating"
        self.pending[EndpointName] = Pending(EndpointConfigName, self.polls, outcome, reason)
        return {"EndpointArn": endpoint.arn}

    def describe_endpoint(self, EndpointName: str) -> Any:
        self.calls.append("describe_endpoint")
        pending = self.pending.get(EndpointName)
        if pending is not None:
            pending.polls -= 1
            if pending.polls < 0:
                self._finish(EndpointName, pending)
        return self._client.describe_endpoint(EndpointName=EndpointName)

    def _finish(self, name: str, pending: Pending) -> None:
        del self.pending[name]
        endpoint = self.backend.endpoints[name]
        if pending.outcome == "ok":
            config = self.backend.endpoint_configs[pending.config]
            endpoint.endpoint_config_name = pending.config
            endpoint.production_variants = endpoint._process_production_variants(
                config.production_variants
            )
            endpoint.endpoint_status = "InService"
            endpoint.failure_reason = None
        elif pending.outcome == "back":
            endpoint.endpoint_status = "InService"
            endpoint.failure_reason = pending.reason
        else:
            endpoint.endpoint_status = "Failed"
            endpoint.failure_reason = pending.reason

    # --- notebook instances --------------------------------------------------------

    def set_notebook_status(self, name: str, status: str, then: Optional[List[str]] = None) -> None:
        self.backend.notebook_instances[name].status = status
        if then:
            self.notebook_pending[name] = list(then)

    def stop_notebook_instance(self, NotebookInstanceName: str) -> Any:
        self.calls.append("stop_notebook_instance")
        notebook = self.backend.notebook_instances[NotebookInstanceName]
        if notebook.status != "InService":
            raise _refuse(
                "StopNotebookInstance", "Status (%s) not in ([InService])" % notebook.status
            )
        notebook.status = "Stopping"
        self.notebook_pending[NotebookInstanceName] = ["Stopping"] * self.polls + ["Stopped"]
        return {}

    def start_notebook_instance(self, NotebookInstanceName: str) -> Any:
        self.calls.append("start_notebook_instance")
        notebook = self.backend.notebook_instances[NotebookInstanceName]
        if notebook.status != "Stopped":
            raise _refuse(
                "StartNotebookInstance", "Status (%s) not in ([Stopped])" % notebook.status
            )
        notebook.status = "Pending"
        self.notebook_pending[NotebookInstanceName] = ["Pending"] * self.polls + ["InService"]
        return {}

    def update_notebook_instance(
        self,
        NotebookInstanceName: str,
        InstanceType: Optional[str] = None,
        DisassociateAcceleratorTypes: bool = False,
        **_: Any,
    ) -> Any:
        self.calls.append("update_notebook_instance")
        notebook = self.backend.notebook_instances.get(NotebookInstanceName)
        if notebook is None:
            raise _refuse("UpdateNotebookInstance", "RecordNotFound")
        if notebook.status != "Stopped":
            raise _refuse(
                "UpdateNotebookInstance", "Status (%s) not in ([Stopped])" % notebook.status
            )
        if InstanceType:
            notebook.instance_type = InstanceType
        if DisassociateAcceleratorTypes:
            notebook.accelerator_types = None
        notebook.status = "Updating"
        self.notebook_pending[NotebookInstanceName] = ["Updating"] * self.polls + ["Stopped"]
        return {}

    def describe_notebook_instance(self, NotebookInstanceName: str) -> Any:
        self.calls.append("describe_notebook_instance")
        queue = self.notebook_pending.get(NotebookInstanceName)
        if queue:
            self.backend.notebook_instances[NotebookInstanceName].status = queue.pop(0)
        answer = self._client.describe_notebook_instance(NotebookInstanceName=NotebookInstanceName)
        if not answer.get("AcceleratorTypes"):
            answer.pop("AcceleratorTypes", None)
        return answer


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
    clients: Clients
    sagemaker: SageMakerStandIn
    autoscaling: Any
    ecr: Any
    time: FakeTime
    progress: io.StringIO

    def waiter(self) -> Waiter:
        return Waiter(
            clock=self.time.clock, sleep=self.time.sleep, interval=30.0, out=self.progress
        )


def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """moto for SageMaker, Application Auto Scaling, ECR and STS; fake credentials only.

    A plain generator: each cloud test module makes its ``aws`` fixture from it.
    """
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        autoscaling = session.client("application-autoscaling")
        sagemaker = SageMakerStandIn(session.client("sagemaker"), autoscaling)
        clients = Clients(
            region=REGION,
            session=session,
            overrides={"sagemaker": sagemaker, "application-autoscaling": autoscaling},
        )
        yield Aws(clients, sagemaker, autoscaling, clients.ecr, FakeTime(), io.StringIO())


def eia_endpoint(
    aws: Aws,
    name: str = "flowers",
    image: str = REGISTRY + ":pytorch-1.5-eia-py38",
    variants: int = 1,
    count: int = 2,
) -> None:
    """An endpoint as an EI user has it: ml.m5.large + ml.eia2.medium, data capture, KMS."""
    sm = aws.sagemaker
    sm.create_model(
        ModelName="%s-model" % name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": "s3://bucket/%s/model.tar.gz" % name,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )
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
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 20,
            "DestinationS3Uri": "s3://bucket/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
        KmsKeyId="arn:aws:kms:%s:%s:key/1234" % (REGION, ACCOUNT),
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


def scaling_of(aws: Aws, endpoint: str, variant: str = "v1") -> Dict[str, Any]:
    """The scaling settings of one variant, without ARNs and times (to compare)."""
    rid = "endpoint/%s/variant/%s" % (endpoint, variant)
    client = aws.autoscaling
    targets = client.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])
    policies = client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid)
    actions = client.describe_scheduled_actions(ServiceNamespace="sagemaker", ResourceId=rid)
    drop = ("CreationTime", "PolicyARN", "ScalableTargetARN", "ScheduledActionARN", "Alarms")

    def clean(items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return [{k: v for k, v in i.items() if k not in drop} for i in items]

    return {
        "targets": clean(targets["ScalableTargets"]),
        "policies": clean(policies["ScalingPolicies"]),
        "scheduled": clean(actions["ScheduledActions"]),
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    yield from moto_aws(monkeypatch)


# --- the stand-in itself ----------------------------------------------------------------


def test_stand_in_update_endpoint_passes_through_updating(aws: Aws) -> None:
    eia_endpoint(aws)
    aws.sagemaker.create_endpoint_config(
        EndpointConfigName="next",
        ProductionVariants=[
            {"VariantName": "v1", "ModelName": "flowers-model", "InitialInstanceCount": 1,
             "InstanceType": "ml.c5.xlarge"}
        ],
    )  # fmt: skip
    aws.sagemaker.update_endpoint(EndpointName="flowers", EndpointConfigName="next")
    seen = [aws.sagemaker.describe_endpoint(EndpointName="flowers")["EndpointStatus"]]
    with pytest.raises(ClientError, match="in-progress"):
        aws.sagemaker.update_endpoint(EndpointName="flowers", EndpointConfigName="next")
    for _ in range(3):
        seen.append(aws.sagemaker.describe_endpoint(EndpointName="flowers")["EndpointStatus"])
    assert seen == ["Updating", "Updating", "InService", "InService"]
    after = aws.sagemaker.describe_endpoint(EndpointName="flowers")
    assert after["EndpointConfigName"] == "next"
    assert after["ProductionVariants"][0]["CurrentInstanceCount"] == 1


def test_stand_in_refuses_update_of_a_scaled_variant(aws: Aws) -> None:
    eia_endpoint(aws)
    add_scaling(aws, "flowers")
    with pytest.raises(ClientError, match="automatic scaling"):
        aws.sagemaker.update_endpoint(EndpointName="flowers", EndpointConfigName="flowers-config")


def test_stand_in_notebook_update_needs_stopped(aws: Aws) -> None:
    aws.sagemaker.create_notebook_instance(
        NotebookInstanceName="nb", InstanceType="ml.t2.medium", RoleArn=ROLE,
        AcceleratorTypes=["ml.eia2.medium"],
    )  # fmt: skip
    with pytest.raises(ClientError, match="Stopped"):
        aws.sagemaker.update_notebook_instance(
            NotebookInstanceName="nb", InstanceType="ml.t3.large"
        )
