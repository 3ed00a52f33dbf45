"""Preflight checks and deployment guardrails of eikit migrate, against the moto server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eikit.cloud import guardrails, migrate
from eikit.cloud.aws import CloudError
from eikit.cloud.guardrails import Traffic
from eikit.cloud.state import StateFile
from tests.unit.cloud_account import (
    Aws,
    add_scaling,
    eia_endpoint,
    model_archive,
    push_image,
    scaling_of,
)
from tests.unit.cloud_server import BUCKET

SUFFIX = "20260101-000000"
CPU_TAG = "pytorch-2.13-cpu-py311"


def plan(aws: Aws, instance_type: str = "ml.c5.xlarge", **opts: Any) -> migrate.Plan:
    return migrate.plan_migration(
        aws.clients, "flowers", instance_type, None, SUFFIX, migrate.Options(**opts)
    )


def start(aws: Aws, tmp_path: Path, the_plan: migrate.Plan) -> int:
    path = tmp_path / "state.json"
    return migrate.start(aws.clients, the_plan, path, aws.waiter(), 3600, aws.progress)


def eikit_alarms(aws: Aws) -> Any:
    alarms = aws.cloudwatch.describe_alarms(AlarmNamePrefix="eikit-")["MetricAlarms"]
    return sorted(a["AlarmName"] for a in alarms)


# --- preflight ----------------------------------------------------------------------------


def test_preflight_names_every_problem_with_its_fix(aws: Aws) -> None:
    eia_endpoint(aws, upload=False, count=3)
    aws.stand_in.quotas = {"ml.c5.xlarge for endpoint usage": 2.0}
    with pytest.raises(CloudError) as caught:
        plan(aws)
    text = str(caught.value)
    assert "preflight: 3 problem(s); nothing was changed" in text
    assert (
        "[image] 123456789012.dkr.ecr.us-east-1.amazonaws.com/eikit:%s is not in ECR" % CPU_TAG
        in text
    )
    assert "Fix: eikit build --framework pytorch --target cpu && eikit push" in text
    assert "[model data] s3://%s/flowers/model.tar.gz does not exist" % BUCKET in text
    assert "'ml.c5.xlarge for endpoint usage' is 2, the update needs 3" in text
    assert "request-service-quota-increase --service-code sagemaker --quota-code L-" in text
    assert aws.stand_in.calls.count("create_model") == 1  # the EI model, made by the test


def test_preflight_checks_the_platform_an_image_index_lists(aws: Aws) -> None:
    eia_endpoint(aws)
    push_image(aws, CPU_TAG, platforms=["linux/arm64"])
    with pytest.raises(CloudError, match="has no linux/amd64 image for ml.c5.xlarge.*linux/arm64"):
        plan(aws)
    push_image(aws, CPU_TAG, platforms=["linux/arm64", "linux/amd64"])
    assert plan(aws).state["models"]


def test_preflight_warnings_do_not_stop_the_plan(aws: Aws) -> None:
    eia_endpoint(aws)
    push_image(aws, CPU_TAG)
    add_scaling(aws, "flowers")  # autoscaling up to 4
    aws.stand_in.quotas = {"ml.c5.xlarge for endpoint usage": 3.0}
    warned = "\n".join(plan(aws).warnings)
    assert "autoscaling can ask for 4 and will stop at 3" in warned
    assert "old config uses Elastic Inference (ml.eia2.medium)" in warned
    assert "shifting traffic back to the old fleet" in warned
    aws.stand_in.quotas = None  # Service Quotas lists nothing for SageMaker
    warned = "\n".join(plan(aws).warnings)
    assert "no quota 'ml.c5.xlarge for endpoint usage' listed: not checked" in warned


def test_preflight_refuses_a_serverless_variant(aws: Aws) -> None:
    eia_endpoint(aws)
    push_image(aws, CPU_TAG)
    config = aws.stand_in.backend().endpoint_configs["flowers-config"]
    config.production_variants[0]["ServerlessConfig"] = {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 1,
    }
    with pytest.raises(CloudError, match="variant v1 is serverless"):
        plan(aws)


def test_volume_size_is_dropped_for_nvme_instances(aws: Aws) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-gpu-py312")
    config = aws.stand_in.backend().endpoint_configs["flowers-config"]
    config.production_variants[0]["VolumeSizeInGB"] = 30
    the_plan = plan(aws, "ml.g4dn.xlarge")
    assert "VolumeSizeInGB" not in the_plan.state["config"]["ProductionVariants"][0]
    assert any("VolumeSizeInGB dropped" in w for w in the_plan.warnings)


# --- guardrails ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, percent, seconds",
    [
        ("canary:10:600", "canary", 10, 600),
        ("linear:25:300", "linear", 25, 300),
        ("all-at-once", "all-at-once", 100, 600),
        ("all-at-once:120", "all-at-once", 100, 120),
    ],
)
def test_traffic_options(text: str, kind: str, percent: int, seconds: int) -> None:
    assert Traffic.parse(text) == Traffic(kind, percent, seconds)


@pytest.mark.parametrize(
    "text",
    ["canary:60:600", "linear:5:60", "canary:10", "slow:1:1", "canary:x:1", "linear:20:9999"],
)
def test_bad_traffic_options(text: str) -> None:
    with pytest.raises(CloudError, match="--traffic"):
        Traffic.parse(text)


def test_deployment_config_for_canary_and_linear() -> None:
    names = ["a", "b"]
    canary = guardrails.deployment_config(Traffic("canary", 10, 600), names)
    policy = canary["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 600,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
    }
    assert policy["TerminationWaitInSeconds"] == 600
    assert policy["MaximumExecutionTimeoutInSeconds"] == 600 * 3 + 3600
    assert canary["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "a"}, {"AlarmName": "b"}]
    }
    linear = guardrails.deployment_config(Traffic("linear", 25, 3600), names)
    routing = linear["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["LinearStepSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert linear["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] == 3600 * 5 + 3600


def test_migration_uses_blue_green_canary_with_alarms_made_and_deleted(
    aws: Aws, tmp_path: Path
) -> None:
    eia_endpoint(aws, count=4)
    push_image(aws, CPU_TAG)
    the_plan = plan(aws, traffic="canary:25:300", latency_ms=250.0)
    assert start(aws, tmp_path, the_plan) == 0, aws.progress.getvalue()
    progress = aws.progress.getvalue()
    for stage in ("Creating", "ActivatingTraffic", "Baking"):
        assert "endpoint flowers: Updating (new fleet: %s)" % stage in progress
    state = StateFile.load(tmp_path / "state.json").data
    deployment = state["guardrails"]["deployment"]
    assert deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert [a["AlarmName"] for a in deployment["AutoRollbackConfiguration"]["Alarms"]] == [
        "eikit-flowers-stop",
        "eikit-flowers-v1-5xx",
        "eikit-flowers-v1-latency",
    ]
    latency = [a for a in state["guardrails"]["alarms"] if a["MetricName"] == "ModelLatency"]
    assert latency[0]["Threshold"] == 250000.0  # microseconds
    assert eikit_alarms(aws) == []  # deleted after the update


def test_an_alarm_during_baking_rolls_back_to_the_old_fleet_without_ei_again(
    aws: Aws, tmp_path: Path
) -> None:
    eia_endpoint(aws, count=2)
    push_image(aws, CPU_TAG)
    before = add_scaling(aws, "flowers")
    the_plan = plan(aws)
    waiter = aws.waiter()
    real_sleep = waiter.sleep

    def errors_while_baking(seconds: float) -> None:
        # the new fleet answers 5xx: CloudWatch puts the guardrail alarm in ALARM
        if aws.stand_in.deployments.get("flowers") and eikit_alarms(aws):
            deployment = aws.stand_in.deployments["flowers"]
            if deployment.phases[deployment.index][0] == "Baking":
                aws.cloudwatch.set_alarm_state(
                    AlarmName="eikit-flowers-v1-5xx", StateValue="ALARM", StateReason="5xx"
                )
        real_sleep(seconds)

    waiter.sleep = errors_while_baking
    code = migrate.start(aws.clients, the_plan, tmp_path / "state.json", waiter, 3600, aws.progress)
    assert code == 1
    now = aws.sm.describe_endpoint(EndpointName="flowers")
    assert (now["EndpointStatus"], now["EndpointConfigName"]) == ("InService", "flowers-config")
    assert "SageMaker rolled the update back to the old fleet" in aws.progress.getvalue()
    assert scaling_of(aws, "flowers") == before
    assert aws.stand_in.calls.count("update_endpoint") == 1  # no UpdateEndpoint back to EI
    assert StateFile.load(tmp_path / "state.json").step == "rolled-back"
    assert eikit_alarms(aws) == []


def test_inf1_falls_back_to_all_at_once_and_says_so(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, archive=model_archive(compiled_for=("inf1",)))
    push_image(aws, "pytorch-1.13-inf1-py310")
    the_plan = plan(aws, "ml.inf1.xlarge")
    assert the_plan.state["guardrails"] is None
    assert any("AWS excludes endpoints with Inf1 instances" in w for w in the_plan.warnings)
    assert "guardrails" not in the_plan.state["steps"]
    assert start(aws, tmp_path, the_plan) == 0, aws.progress.getvalue()
    assert eikit_alarms(aws) == []


def test_canary_on_one_instance_shifts_all_at_once(aws: Aws) -> None:
    eia_endpoint(aws, count=1)
    push_image(aws, CPU_TAG)
    the_plan = plan(aws)
    routing = the_plan.state["guardrails"]["deployment"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]
    assert routing == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}
    assert any("smallest variant has 1; shifting all at once" in w for w in the_plan.warnings)


def test_migrate_sets_autoscaling_on_an_endpoint_that_had_none(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, count=2)
    push_image(aws, CPU_TAG)
    assert scaling_of(aws, "flowers")["targets"] == []
    the_plan = plan(aws, autoscale=(2, 8, 300.0))
    assert start(aws, tmp_path, the_plan) == 0, aws.progress.getvalue()
    scaled = scaling_of(aws, "flowers")
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in scaled["targets"]] == [(2, 8)]
    assert [p["PolicyName"] for p in scaled["policies"]] == ["eikit-invocations-per-instance"]


def test_migrate_autoscaling_replaces_the_invocations_policy_and_keeps_the_rest(aws: Aws) -> None:
    eia_endpoint(aws, count=2)
    push_image(aws, CPU_TAG)
    add_scaling(aws, "flowers")  # a target-tracking policy on invocations, a scheduled action
    new = plan(aws, autoscale=(2, 8, 300.0)).state["new_scaling"]["v1"]
    assert (new["target"]["MinCapacity"], new["target"]["MaxCapacity"]) == (2, 8)
    assert [p["PolicyName"] for p in new["policies"]] == ["eikit-invocations-per-instance"]
    assert [a["ScheduledActionName"] for a in new["scheduled"]] == ["nightly"]
