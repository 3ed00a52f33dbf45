"""eikit migrate endpoint / resume / rollback against moto (and the stand-in UpdateEndpoint)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from eikit.cli import main
from eikit.cloud import commands, migrate
from eikit.cloud.aws import CloudError
from eikit.cloud.state import StateFile
from tests.unit.test_cloud_moto import (
    REGION,
    REGISTRY,
    Aws,
    add_scaling,
    eia_endpoint,
    moto_aws,
    scaling_of,
)

CPU_IMAGE = REGISTRY + ":pytorch-2.13-cpu-py311"
NEURON_IMAGE = REGISTRY + ":pytorch-1.13-inf1-py310"
INF2_IMAGE = REGISTRY + ":pytorch-2.9-inf2-py312"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    yield from moto_aws(monkeypatch)


def push_image(aws: Aws, tag: str) -> None:
    """An image in moto's ECR under eikit:TAG (the repository made when missing)."""
    repositories = aws.ecr.describe_repositories()["repositories"]
    if not any(r["repositoryName"] == "eikit" for r in repositories):
        aws.ecr.create_repository(repositoryName="eikit")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": "sha256:" + "0" * 64},
        "layers": [],
    }
    aws.ecr.put_image(repositoryName="eikit", imageManifest=json.dumps(manifest), imageTag=tag)


def run_migration(aws: Aws, tmp_path: Path, instance_type: str = "ml.c5.xlarge", **kw: Any) -> int:
    plan = migrate.plan_migration(
        aws.clients, "flowers", instance_type, kw.pop("image", None), "20260101-000000"
    )
    out = kw.pop("out", None) or aws.progress
    return migrate.start(
        aws.clients, plan, tmp_path / "state.json", aws.waiter(), kw.pop("timeout", 3600), out
    )


def endpoint(aws: Aws) -> Any:
    return aws.sagemaker._client.describe_endpoint(EndpointName="flowers")


def config_of(aws: Aws, name: str) -> Any:
    return aws.sagemaker._client.describe_endpoint_config(EndpointConfigName=name)


def test_migration_swaps_the_image_keeps_settings_and_drops_ei(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, count=3)
    push_image(aws, "pytorch-2.13-cpu-py311")
    assert run_migration(aws, tmp_path) == 0
    now = endpoint(aws)
    assert now["EndpointStatus"] == "InService"
    new = config_of(aws, now["EndpointConfigName"])
    old = config_of(aws, "flowers-config")
    assert now["EndpointConfigName"] == "flowers-config-20260101-000000"
    [variant] = new["ProductionVariants"]
    assert variant["InstanceType"] == "ml.c5.xlarge"
    assert "AcceleratorType" not in variant
    assert variant["InitialInstanceCount"] == 3 and variant["InitialVariantWeight"] == 1.0
    assert new["DataCaptureConfig"] == old["DataCaptureConfig"]
    assert new["KmsKeyId"] == old["KmsKeyId"]
    model = aws.sagemaker._client.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == CPU_IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://bucket/flowers/model.tar.gz"
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py"}
    assert model["ExecutionRoleArn"].endswith("role/SageMakerRole")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["step"] == "done"
    assert [h["step"] for h in state["history"]] == [
        "planned", "config-created", "scaling-removed", "updating", "updated", "done",
    ]  # fmt: skip
    progress = aws.progress.getvalue()
    assert "endpoint flowers: Updating" in progress and "endpoint flowers: InService" in progress
    assert aws.time.sleeps == [30.0, 30.0]  # polled, never slept 10 minutes


def test_autoscaling_is_removed_for_the_update_and_restored(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, count=2)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    assert before["policies"] and before["scheduled"]
    assert run_migration(aws, tmp_path) == 0
    assert endpoint(aws)["EndpointConfigName"].endswith("20260101-000000")
    assert scaling_of(aws, "flowers") == before
    calls = aws.sagemaker.calls
    assert calls.count("update_endpoint") == 1  # the stand-in refuses an update with scaling on


def test_multi_variant_weights_and_counts(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, variants=2, count=1)
    push_image(aws, "pytorch-2.13-cpu-py311")
    add_scaling(aws, "flowers", "v2")
    assert run_migration(aws, tmp_path) == 0
    new = config_of(aws, endpoint(aws)["EndpointConfigName"])
    assert [(v["VariantName"], v["InitialVariantWeight"]) for v in new["ProductionVariants"]] == [
        ("v1", 1.0), ("v2", 0.5),
    ]  # fmt: skip
    assert {v["ModelName"] for v in new["ProductionVariants"]} == {"flowers-model-20260101-000000"}
    assert scaling_of(aws, "flowers", "v2")["targets"][0]["MaxCapacity"] == 4


def test_refuses_an_endpoint_that_is_not_in_service(aws: Aws) -> None:
    eia_endpoint(aws)
    aws.sagemaker.backend.endpoints["flowers"].endpoint_status = "Updating"
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
    eia_endpoint(aws)
    # ml.inf1.* and ml.inf2.* get different images: torch-neuron (Inf1) and torch-neuronx
    push_image(aws, "pytorch-1.13-inf1-py310")
    push_image(aws, "pytorch-2.9-inf2-py312")
    plan = migrate.plan_migration(aws.clients, "flowers", "ml.inf1.xlarge", None, "s")
    assert plan.state["models"][0]["PrimaryContainer"]["Image"] == NEURON_IMAGE
    plan = migrate.plan_migration(aws.clients, "flowers", "ml.inf2.xlarge", None, "t")
    assert plan.state["models"][0]["PrimaryContainer"]["Image"] == INF2_IMAGE
    # (how the model gets compiled is eikit.neuron.advice.migration_notes, which the plan
    # quotes once issue 13's migration is merged: tests/unit/test_neuron_advice.py)
    with pytest.raises(CloudError, match="pytorch-2.13-gpu-py312"):
        migrate.plan_migration(aws.clients, "flowers", "ml.g4dn.xlarge", None, "s")


def test_a_foreign_image_needs_image(aws: Aws, tmp_path: Path) -> None:
    foreign = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference-eia:1.5.1-cpu-py36"
    eia_endpoint(aws, image=foreign)
    with pytest.raises(CloudError, match="not an eikit image.*--image"):
        migrate.plan_migration(aws.clients, "flowers", "ml.c5.xlarge", None, "s")
    mine = "%s.dkr.ecr.%s.amazonaws.com/mine:latest" % ("123456789012", REGION)
    assert run_migration(aws, tmp_path, image=mine) == 0
    model = endpoint(aws)
    config = config_of(aws, model["EndpointConfigName"])
    image = aws.sagemaker._client.describe_model(
        ModelName=config["ProductionVariants"][0]["ModelName"]
    )["PrimaryContainer"]["Image"]
    assert image == mine


@pytest.mark.parametrize("how", ["refused", "back", "failed-then-ok"])
def test_a_failed_update_rolls_back_and_restores_scaling(
    aws: Aws, tmp_path: Path, how: str
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    if how == "refused":
        aws.sagemaker.refuse_updates = 1
    elif how == "back":
        aws.sagemaker.update_outcomes = ["back"]  # SageMaker keeps serving the old config
    else:
        # the endpoint ends Failed; eikit's UpdateEndpoint back to the old config works
        aws.sagemaker.update_outcomes = ["failed", "ok"]
        aws.sagemaker.backend  # noqa: B018
        original = aws.sagemaker.update_endpoint

        def update_failed_ok(**kw: Any) -> Any:
            endpoint = aws.sagemaker.backend.endpoints["flowers"]
            if endpoint.endpoint_status == "Failed":  # assume AWS lets a Failed one update
                endpoint.endpoint_status = "InService"
            return original(**kw)

        aws.sagemaker.update_endpoint = update_failed_ok  # type: ignore[method-assign]
    assert run_migration(aws, tmp_path) == 1
    now = endpoint(aws)
    assert now["EndpointStatus"] == "InService"
    assert now["EndpointConfigName"] == "flowers-config"
    assert scaling_of(aws, "flowers") == before
    state = StateFile.load(tmp_path / "state.json")
    assert state.step == "rolled-back"
    assert state.data["failure"]


def test_interrupted_migration_resumes_and_restores_scaling(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    aws.time.interrupt_after = 1  # Ctrl-C while waiting for InService
    with pytest.raises(KeyboardInterrupt):
        run_migration(aws, tmp_path)
    state = StateFile.load(tmp_path / "state.json")
    assert state.step == "updating"
    assert scaling_of(aws, "flowers")["targets"] == []  # removed, not yet restored
    _cli(aws, monkeypatch)
    assert main(["migrate", "resume", "--state", str(tmp_path / "state.json")]) == 0
    assert "resuming the migration of flowers at step updating" in capsys.readouterr().out
    assert endpoint(aws)["EndpointConfigName"] == "flowers-config-20260101-000000"
    assert scaling_of(aws, "flowers") == before
    assert StateFile.load(tmp_path / "state.json").step == "done"
    assert aws.sagemaker.calls.count("update_endpoint") == 1


def test_interrupted_migration_rolls_back(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    aws.time.interrupt_after = 1
    with pytest.raises(KeyboardInterrupt):
        run_migration(aws, tmp_path)
    _cli(aws, monkeypatch)
    assert main(["migrate", "rollback", "--state", str(tmp_path / "state.json")]) == 0
    now = endpoint(aws)
    assert (now["EndpointStatus"], now["EndpointConfigName"]) == ("InService", "flowers-config")
    assert scaling_of(aws, "flowers") == before
    assert StateFile.load(tmp_path / "state.json").step == "rolled-back"


def test_rollback_after_a_finished_migration(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    assert run_migration(aws, tmp_path) == 0
    state = StateFile.load(tmp_path / "state.json")
    assert migrate.Migration(aws.clients, state, aws.waiter(), 3600, aws.progress).rollback() == 0
    assert endpoint(aws)["EndpointConfigName"] == "flowers-config"
    assert scaling_of(aws, "flowers") == before
    assert aws.sagemaker.calls.count("update_endpoint") == 2


def test_timeout_leaves_a_resumable_state(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    aws.sagemaker.polls = 100
    with pytest.raises(CloudError, match="still Updating.*migrate resume.*migrate rollback"):
        run_migration(aws, tmp_path, timeout=120)
    assert StateFile.load(tmp_path / "state.json").step == "updating"
    with pytest.raises(CloudError, match="unfinished migration"):
        run_migration(aws, tmp_path)


def _cli(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    monkeypatch.setattr(commands, "make_clients", lambda args: aws.clients)
    monkeypatch.setattr(commands, "make_waiter", lambda args: aws.waiter())
    return []


def test_cli_dry_run_prints_the_plan_and_changes_nothing(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    add_scaling(aws, "flowers")
    _cli(aws, monkeypatch)
    monkeypatch.chdir(tmp_path)
    code = main(["migrate", "endpoint", "flowers", "--instance-type", "ml.c5.xlarge", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    for text in (
        "migrate endpoint flowers (account 123456789012, us-east-1)",
        "EI accelerator ml.eia2.medium removed",
        "sagemaker.create_model",
        "sagemaker.create_endpoint_config",
        "application-autoscaling.delete_scaling_policy",
        "application-autoscaling.deregister_scalable_target",
        "sagemaker.update_endpoint",
        "application-autoscaling.register_scalable_target",
        "application-autoscaling.put_scaling_policy",
        "application-autoscaling.put_scheduled_action",
        "dry run: nothing changed",
    ):
        assert text in out
    assert "update_endpoint" not in aws.sagemaker.calls
    assert not list(tmp_path.iterdir())  # no state file
    assert len(aws.sagemaker._client.list_endpoint_configs()["EndpointConfigs"]) == 1


def test_cli_migrate_then_rollback_by_endpoint_name(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    _cli(aws, monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main(["migrate", "endpoint", "flowers", "--instance-type", "ml.c5.xlarge"]) == 0
    assert (tmp_path / "eikit-migrate-flowers.json").is_file()
    assert main(["migrate", "rollback", "flowers"]) == 0
    assert endpoint(aws)["EndpointConfigName"] == "flowers-config"
    assert main(["migrate", "endpoint", "nope", "--instance-type", "ml.c5.xlarge"]) == 1
    assert "cannot read endpoint nope" in capsys.readouterr().err


def test_waiter_reports_progress_and_times_out() -> None:
    from eikit.cloud.aws import Waiter, WaitTimeout
    from tests.unit.test_cloud_moto import FakeTime

    clock = FakeTime()
    out = io.StringIO()
    waiter = Waiter(clock=clock.clock, sleep=clock.sleep, interval=30, progress_every=60, out=out)
    statuses = iter(["Creating"] * 5 + ["InService"])
    answer = waiter.wait(
        "endpoint e",
        lambda: {"S": next(statuses)},
        lambda a: a["S"],
        ["InService"],
        ["Failed"],
        600,
    )
    assert answer == {"S": "InService"}
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
    path.write_text("{")
    with pytest.raises(CloudError, match="not a migration state file"):
        StateFile.load(path)
    with pytest.raises(CloudError, match="no migration state file"):
        StateFile.load(tmp_path / "missing.json")
