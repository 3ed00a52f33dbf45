"""eikit migrate endpoint / resume / rollback against the moto server (tests/unit/cloud_server.py).

The tests named after a defect reproduce one found by running eikit against a moto server as
a new user would; each failed before its fix.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, List

import pytest

from eikit.cli import main
from eikit.cloud import migrate
from eikit.cloud.aws import CloudError
from eikit.cloud.state import StateFile
from tests.unit.cloud_account import (
    Aws,
    add_scaling,
    add_step_scaling,
    dead_alarm_actions,
    eia_endpoint,
    model_archive,
    push_image,
    scaling_of,
)
from tests.unit.cloud_server import EI_REFUSAL, REGION, REGISTRY

CPU_IMAGE = REGISTRY + ":pytorch-2.13-cpu-py311"
NEURON_IMAGE = REGISTRY + ":pytorch-1.13-inf1-py310"
INF2_IMAGE = REGISTRY + ":pytorch-2.9-inf2-py312"
SUFFIX = "20260101-000000"


def run_migration(aws: Aws, tmp_path: Path, instance_type: str = "ml.c5.xlarge", **kw: Any) -> int:
    plan = migrate.plan_migration(
        aws.clients, "flowers", instance_type, kw.pop("image", None), SUFFIX
    )
    out = kw.pop("out", None) or aws.progress
    return migrate.start(
        aws.clients, plan, tmp_path / "state.json", aws.waiter(), kw.pop("timeout", 3600), out
    )


def rollback(aws: Aws, tmp_path: Path) -> int:
    state = StateFile.load(tmp_path / "state.json")
    return migrate.Migration(aws.clients, state, aws.waiter(), 3600, aws.progress).rollback()


def endpoint(aws: Aws) -> Any:
    return aws.sm.describe_endpoint(EndpointName="flowers")


def config_of(aws: Aws, name: str) -> Any:
    return aws.sm.describe_endpoint_config(EndpointConfigName=name)


def step(tmp_path: Path) -> str:
    return StateFile.load(tmp_path / "state.json").step


def test_migration_swaps_the_image_keeps_settings_and_drops_ei(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, count=3)
    push_image(aws, "pytorch-2.13-cpu-py311")
    assert run_migration(aws, tmp_path) == 0, aws.progress.getvalue()
    now = endpoint(aws)
    assert now["EndpointStatus"] == "InService"
    new = config_of(aws, now["EndpointConfigName"])
    old = config_of(aws, "flowers-config")
    assert now["EndpointConfigName"] == "flowers-config-" + SUFFIX
    [variant] = new["ProductionVariants"]
    assert variant["InstanceType"] == "ml.c5.xlarge"
    assert "AcceleratorType" not in variant
    assert variant["InitialInstanceCount"] == 3 and variant["InitialVariantWeight"] == 1.0
    assert new["DataCaptureConfig"] == old["DataCaptureConfig"]
    assert new["KmsKeyId"] == old["KmsKeyId"]
    model = aws.sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == CPU_IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://models-bucket/flowers/model.tar.gz"
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py"}
    assert model["ExecutionRoleArn"].endswith("role/SageMakerRole")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["step"] == "done"
    assert [h["step"] for h in state["history"]] == [
        "planned", "create", "guardrails", "remove-scaling", "update", "wait", "restore-scaling",
        "remove-guardrails", "done",
    ]  # fmt: skip
    progress = aws.progress.getvalue()
    assert "endpoint flowers: Updating" in progress and "endpoint flowers: InService" in progress
    assert set(aws.time.sleeps) == {30.0}  # polled, never slept 10 minutes


def test_defect_moto_server_empty_data_capture_config_is_not_copied(
    aws: Aws, tmp_path: Path
) -> None:
    """moto answers DataCaptureConfig {} for a config without capture; copying it made
    CreateEndpointConfig fail parameter validation."""
    eia_endpoint(aws, capture=False)
    push_image(aws, "pytorch-2.13-cpu-py311")
    assert run_migration(aws, tmp_path) == 0, aws.progress.getvalue()
    new = config_of(aws, endpoint(aws)["EndpointConfigName"])
    assert new["DataCaptureConfig"] == {}  # moto's answer for "none"; eikit sent none
    assert "KmsKeyId" not in new or not new["KmsKeyId"]


def test_autoscaling_is_removed_for_the_update_and_restored(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, count=2)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    assert before["policies"] and before["scheduled"]
    assert run_migration(aws, tmp_path) == 0, aws.progress.getvalue()
    assert endpoint(aws)["EndpointConfigName"].endswith(SUFFIX)
    assert scaling_of(aws, "flowers") == before
    assert aws.stand_in.calls.count("update_endpoint") == 1  # refused while scaling is on


def test_defect_step_scaling_alarms_point_at_the_new_policies(aws: Aws, tmp_path: Path) -> None:
    """A step-scaling policy is driven by the user's alarm, whose action names the policy's
    ARN; a re-created policy has a new ARN, so the alarm drove nothing after a migration."""
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    alarm = add_step_scaling(aws, "flowers")
    before = scaling_of(aws, "flowers")
    assert run_migration(aws, tmp_path) == 0, aws.progress.getvalue()
    assert scaling_of(aws, "flowers") == before
    assert dead_alarm_actions(aws) == []
    [policy] = aws.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")[
        "ScalingPolicies"
    ]
    [described] = aws.cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
    assert described["AlarmActions"] == [policy["PolicyARN"]]
    assert described["Threshold"] == 80.0  # the rest of the alarm as the user made it


def test_defect_resume_gets_past_partly_removed_scaling(aws: Aws, tmp_path: Path) -> None:
    """`resume` deleted policies recorded in the state file that were already deleted, and
    AWS refuses that: every retry failed the same way."""
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    plan = migrate.plan_migration(aws.clients, "flowers", "ml.c5.xlarge", None, SUFFIX)
    state = StateFile.new(tmp_path / "state.json", plan.state)
    # the run before was stopped after deleting the policy (the target is still there)
    rid = "endpoint/flowers/variant/v1"
    aws.autoscaling.delete_scaling_policy(
        PolicyName="invocations", ServiceNamespace="sagemaker", ResourceId=rid,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
    )  # fmt: skip
    migration = migrate.Migration(aws.clients, state, aws.waiter(), 3600, aws.progress)
    assert migration.execute() == 0, aws.progress.getvalue()
    assert scaling_of(aws, "flowers") == before
    assert endpoint(aws)["EndpointConfigName"].endswith(SUFFIX)


def test_defect_rollback_refused_keeps_autoscaling_and_says_so(aws: Aws, tmp_path: Path) -> None:
    """Rollback removed autoscaling from the working new config, then UpdateEndpoint to the
    old EI config was refused: the endpoint was left without autoscaling, what was removed
    was not saved, and the state stayed `rolling-back`."""
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    add_scaling(aws, "flowers")
    assert run_migration(aws, tmp_path) == 0, aws.progress.getvalue()
    after = scaling_of(aws, "flowers")
    assert after["targets"]
    code = rollback(aws, tmp_path)
    out = aws.progress.getvalue()
    assert code == 1
    assert EI_REFUSAL in out and "stays InService on flowers-config-" + SUFFIX in out
    now = endpoint(aws)
    assert (now["EndpointStatus"], now["EndpointConfigName"]) == (
        "InService", "flowers-config-" + SUFFIX,
    )  # fmt: skip
    assert scaling_of(aws, "flowers") == after
    state = StateFile.load(tmp_path / "state.json")
    assert state.step == "done"
    assert EI_REFUSAL in state.data["rollback_refused"]


def test_defect_region_option_does_not_override_the_state_file(
    aws: Aws, tmp_path: Path, capsys: Any
) -> None:
    """`--region` replaced the region recorded in the state file: resume acted on an
    endpoint of the same name in another region."""
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    plan = migrate.plan_migration(aws.clients, "flowers", "ml.c5.xlarge", None, SUFFIX)
    StateFile.new(tmp_path / "state.json", plan.state)
    other = aws.session.client("sagemaker", region_name="eu-west-1")
    other.create_model(
        ModelName="flowers-model", ExecutionRoleArn="arn:aws:iam::123456789012:role/R",
        PrimaryContainer={"Image": CPU_IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"},
    )  # fmt: skip
    other.create_endpoint_config(
        EndpointConfigName="flowers-config",
        ProductionVariants=[{"VariantName": "v1", "ModelName": "flowers-model",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    other.create_endpoint(EndpointName="flowers", EndpointConfigName="flowers-config")
    args = ["migrate", "resume", "--state", str(tmp_path / "state.json"), "--poll", "0"]
    assert main(args + ["--region", "eu-west-1"]) == 1
    assert "region us-east-1, not --region eu-west-1" in capsys.readouterr().err
    assert other.list_models()["Models"][0]["ModelName"] == "flowers-model"
    assert len(other.list_models()["Models"]) == 1  # nothing made in eu-west-1
    assert main(args) == 0
    assert endpoint(aws)["EndpointConfigName"].endswith(SUFFIX)


def test_defect_the_account_is_checked_against_the_state_file(aws: Aws, tmp_path: Path) -> None:
    """The account recorded in the state file was never compared with the credentials'."""
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    plan = migrate.plan_migration(aws.clients, "flowers", "ml.c5.xlarge", None, SUFFIX)
    plan.state["account"] = "210987654321"
    state = StateFile.new(tmp_path / "state.json", plan.state)
    migration = migrate.Migration(aws.clients, state, aws.waiter(), 3600, aws.progress)
    made = len(aws.stand_in.calls)
    with pytest.raises(CloudError, match="account 210987654321.*account 123456789012"):
        migration.execute()
    with pytest.raises(CloudError, match="account 210987654321"):
        migration.rollback()
    assert [c for c in aws.stand_in.calls[made:] if not c.startswith(("describe", "POST"))] == []
    assert endpoint(aws)["EndpointConfigName"] == "flowers-config"


def test_defect_shadow_variants_get_the_new_instance_and_image(aws: Aws, tmp_path: Path) -> None:
    """Shadow variants kept the old EI model (and its image) on the new instance type."""
    eia_endpoint(aws, shadow=True)
    push_image(aws, "pytorch-2.13-cpu-py311")
    assert run_migration(aws, tmp_path) == 0, aws.progress.getvalue()
    new = config_of(aws, endpoint(aws)["EndpointConfigName"])
    [shadow] = new["ShadowProductionVariants"]
    assert shadow["InstanceType"] == "ml.c5.xlarge"
    assert "AcceleratorType" not in shadow
    assert shadow["ModelName"] == "flowers-model-" + SUFFIX
    image = aws.sm.describe_model(ModelName=shadow["ModelName"])["PrimaryContainer"]["Image"]
    assert image == CPU_IMAGE


def test_multi_variant_weights_and_counts(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, variants=2, count=2)
    push_image(aws, "pytorch-2.13-cpu-py311")
    add_scaling(aws, "flowers", "v2")
    assert run_migration(aws, tmp_path) == 0, aws.progress.getvalue()
    new = config_of(aws, endpoint(aws)["EndpointConfigName"])
    assert [(v["VariantName"], v["InitialVariantWeight"]) for v in new["ProductionVariants"]] == [
        ("v1", 1.0), ("v2", 0.5),
    ]  # fmt: skip
    assert {v["ModelName"] for v in new["ProductionVariants"]} == {"flowers-model-" + SUFFIX}
    assert scaling_of(aws, "flowers", "v2")["targets"][0]["MaxCapacity"] == 4


def test_refuses_an_endpoint_that_is_not_in_service(aws: Aws) -> None:
    eia_endpoint(aws)
    aws.stand_in.backend().endpoints["flowers"].endpoint_status = "Updating"
    with pytest.raises(CloudError, match="Updating; a migration starts only from InService"):
        migrate.plan_migration(aws.clients, "flowers", "ml.c5.xlarge", None, "s")


def test_refuses_with_the_build_command_when_the_image_is_missing(aws: Aws) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")  # the repository exists, the neuron tag does not
    with pytest.raises(CloudError) as caught:
        migrate.plan_migration(aws.clients, "flowers", "ml.inf1.xlarge", None, "s")
    text = str(caught.value)
    assert NEURON_IMAGE in text and "not in ECR" in text
    assert "eikit build --framework pytorch --target inf1 && eikit push --repository eikit " in text
    assert "--tag pytorch-1.13-inf1-py310 --region us-east-1" in text


def test_gpu_and_neuron_targets_get_their_images(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, archive=model_archive(compiled_for=("inf1", "inf2")))
    # ml.inf1.* and ml.inf2.* get different images: torch-neuron (Inf1) and torch-neuronx
    # (what the plans say of compiling: tests/unit/test_cloud_neuron_migrate.py)
    push_image(aws, "pytorch-1.13-inf1-py310")
    push_image(aws, "pytorch-2.9-inf2-py312")
    plan = migrate.plan_migration(aws.clients, "flowers", "ml.inf1.xlarge", None, "s")
    assert plan.state["models"][0]["PrimaryContainer"]["Image"] == NEURON_IMAGE
    plan = migrate.plan_migration(aws.clients, "flowers", "ml.inf2.xlarge", None, "t")
    assert plan.state["models"][0]["PrimaryContainer"]["Image"] == INF2_IMAGE
    with pytest.raises(CloudError, match="pytorch-2.13-gpu-py312"):
        migrate.plan_migration(aws.clients, "flowers", "ml.g4dn.xlarge", None, "s")


def test_a_foreign_image_needs_image(aws: Aws, tmp_path: Path) -> None:
    foreign = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference-eia:1.5.1-cpu-py36"
    eia_endpoint(aws, image=foreign)
    with pytest.raises(CloudError, match="not an eikit image.*--image"):
        migrate.plan_migration(aws.clients, "flowers", "ml.c5.xlarge", None, "s")
    mine = "%s.dkr.ecr.%s.amazonaws.com/eikit:mine" % ("123456789012", REGION)
    push_image(aws, "mine")
    assert run_migration(aws, tmp_path, image=mine) == 0, aws.progress.getvalue()
    config = config_of(aws, endpoint(aws)["EndpointConfigName"])
    image = aws.sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])[
        "PrimaryContainer"
    ]["Image"]
    assert image == mine


@pytest.mark.parametrize("how", ["refused", "back", "failed"])
def test_a_failed_update_rolls_back_and_restores_scaling(
    aws: Aws, tmp_path: Path, how: str
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    alarm = add_step_scaling(aws, "flowers")
    before = scaling_of(aws, "flowers")
    if how == "refused":
        aws.stand_in.refuse_updates = 1
    else:  # the new fleet fails: SageMaker keeps the old one serving (blue/green)
        aws.stand_in.update_outcomes = [how]
    assert run_migration(aws, tmp_path) == 1
    now = endpoint(aws)
    if how == "failed":  # the endpoint ended Failed: UpdateEndpoint to the EI config refused
        assert now["EndpointStatus"] == "Failed"
        assert step(tmp_path) == "rolling-back"
        return
    assert (now["EndpointStatus"], now["EndpointConfigName"]) == ("InService", "flowers-config")
    assert scaling_of(aws, "flowers") == before
    assert dead_alarm_actions(aws) == [] and alarm
    state = StateFile.load(tmp_path / "state.json")
    assert state.step == "rolled-back"
    assert state.data["failure"]
    assert aws.stand_in.calls.count("update_endpoint") == 1  # never back to the EI config
    names = [a["AlarmName"] for a in aws.cloudwatch.describe_alarms()["MetricAlarms"]]
    assert not [n for n in names if n.startswith("eikit-")]  # guardrails deleted


def test_interrupted_migration_resumes_and_restores_scaling(
    aws: Aws, tmp_path: Path, capsys: Any
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    aws.time.interrupt_after = 1  # Ctrl-C while waiting for InService
    with pytest.raises(KeyboardInterrupt):
        run_migration(aws, tmp_path)
    assert step(tmp_path) == "update"
    assert scaling_of(aws, "flowers")["targets"] == []  # removed, not yet restored
    assert main(["migrate", "resume", "--state", str(tmp_path / "state.json"), "--poll", "0"]) == 0
    assert "resuming the migration of flowers at step update" in capsys.readouterr().out
    assert endpoint(aws)["EndpointConfigName"] == "flowers-config-" + SUFFIX
    assert scaling_of(aws, "flowers") == before
    assert step(tmp_path) == "done"
    assert aws.stand_in.calls.count("update_endpoint") == 1


def test_interrupted_migration_rolls_back_to_the_old_fleet(aws: Aws, tmp_path: Path) -> None:
    """Stopped during a blue/green update, a rollback trips eikit's stop alarm: SageMaker
    shifts traffic back to the old fleet, and no EI config is deployed again."""
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    aws.time.interrupt_after = 1
    with pytest.raises(KeyboardInterrupt):
        run_migration(aws, tmp_path)
    args = ["migrate", "rollback", "--state", str(tmp_path / "state.json"), "--poll", "0"]
    assert main(args) == 0
    now = endpoint(aws)
    assert (now["EndpointStatus"], now["EndpointConfigName"]) == ("InService", "flowers-config")
    assert scaling_of(aws, "flowers") == before
    assert step(tmp_path) == "rolled-back"
    assert aws.stand_in.calls.count("update_endpoint") == 1  # SageMaker went back, not eikit


def test_rollback_after_a_finished_migration_off_a_non_ei_config(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    aws.stand_in.backend().endpoint_configs["flowers-config"].production_variants[0].pop(
        "AcceleratorType"
    )  # an endpoint on plain instances: its old config can be deployed again
    assert run_migration(aws, tmp_path) == 0, aws.progress.getvalue()
    assert "rollback --state" in aws.progress.getvalue()
    assert rollback(aws, tmp_path) == 0, aws.progress.getvalue()
    assert endpoint(aws)["EndpointConfigName"] == "flowers-config"
    assert scaling_of(aws, "flowers") == before
    assert aws.stand_in.calls.count("update_endpoint") == 2


def test_timeout_leaves_a_resumable_state(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    aws.stand_in.polls = 100
    with pytest.raises(CloudError, match="still Updating.*migrate resume.*migrate rollback"):
        run_migration(aws, tmp_path, timeout=120)
    assert step(tmp_path) == "update"
    with pytest.raises(CloudError, match="unfinished migration"):
        run_migration(aws, tmp_path)


def test_cli_dry_run_prints_the_plan_and_changes_nothing(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    add_scaling(aws, "flowers")
    monkeypatch.chdir(tmp_path)
    code = main(["migrate", "endpoint", "flowers", "--instance-type", "ml.c5.xlarge", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    for text in (
        "migrate endpoint flowers (account 123456789012, us-east-1)",
        "EI accelerator ml.eia2.medium removed",
        "deployment guardrails: blue/green, canary",
        "! [rollback] the old config uses Elastic Inference",
        "sagemaker.create_model",
        "sagemaker.create_endpoint_config",
        "cloudwatch.put_metric_alarm",
        "application-autoscaling.delete_scaling_policy",
        "application-autoscaling.deregister_scalable_target",
        "sagemaker.update_endpoint",
        '"Type": "CANARY"',
        "application-autoscaling.register_scalable_target",
        "application-autoscaling.put_scaling_policy",
        "application-autoscaling.put_scheduled_action",
        "cloudwatch.delete_alarms",
        "dry run: nothing changed",
    ):
        assert text in out
    assert "update_endpoint" not in aws.stand_in.calls
    assert not list(tmp_path.iterdir())  # no state file
    assert len(aws.sm.list_endpoint_configs()["EndpointConfigs"]) == 1


def test_cli_migrate_then_rollback_by_endpoint_name(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    monkeypatch.chdir(tmp_path)
    base = ["--poll", "0"]
    assert main(["migrate", "endpoint", "flowers", "--instance-type", "ml.c5.xlarge"] + base) == 0
    assert (tmp_path / "eikit-migrate-flowers.json").is_file()
    assert main(["migrate", "rollback", "flowers"] + base) == 1  # AWS refuses the EI config
    assert "rollback refused" in capsys.readouterr().out
    now = endpoint(aws)["EndpointConfigName"]
    assert now.startswith("flowers-config-") and now != "flowers-config"
    assert main(["migrate", "endpoint", "nope", "--instance-type", "ml.c5.xlarge"] + base) == 1
    assert "cannot read endpoint nope" in capsys.readouterr().err


def test_waiter_reports_progress_and_times_out() -> None:
    from eikit.cloud.aws import Waiter, WaitTimeout
    from tests.unit.cloud_account import FakeTime

    clock = FakeTime()
    out = io.StringIO()
    waiter = Waiter(clock=clock.clock, sleep=clock.sleep, interval=30, progress_every=60, out=out)
    statuses = iter(["Creating"] * 5 + ["InService"])
    seen: List[str] = []
    answer = waiter.wait(
        "endpoint e",
        lambda: {"S": next(statuses)},
        lambda a: a["S"],
        ["InService"],
        ["Failed"],
        600,
        each=lambda a: seen.append(a["S"]),
    )
    assert answer == {"S": "InService"}
    assert seen == ["Creating"] * 5 + ["InService"]
    assert out.getvalue().splitlines() == [
        "[0:00] endpoint e: Creating", "[1:00] endpoint e: Creating", "[2:00] endpoint e: Creating",
        "[2:30] endpoint e: InService",
    ]  # fmt: skip
    with pytest.raises(WaitTimeout, match="still Creating after 2:00"):
        waiter.wait("endpoint e", lambda: {"S": "Creating"}, lambda a: a["S"], ["x"], [], 120)


def test_a_state_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"version": 7}')
    with pytest.raises(CloudError, match="not an eikit migration state file"):
        StateFile.load(path)
    path.write_text('{"version": 1, "kind": "endpoint-migration", "step": "planned"}')
    with pytest.raises(CloudError, match="another eikit version"):
        StateFile.load(path)
    path.write_text("{")
    with pytest.raises(CloudError, match="not a migration state file"):
        StateFile.load(path)
    with pytest.raises(CloudError, match="no migration state file"):
        StateFile.load(tmp_path / "missing.json")
