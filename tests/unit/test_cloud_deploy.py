"""eikit package and eikit deploy (against moto), and the instance-type -> image mapping."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from eikit.cli import main
from eikit.cloud.aws import CloudError
from eikit.cloud.deploy import DeployRequest, deploy, plan_deploy
from eikit.cloud.images import build_command, parse_image, target_for
from eikit.cloud.package import package_model
from tests.unit.cloud_account import Aws, add_scaling, eia_endpoint, scaling_of
from tests.unit.cloud_server import REGISTRY, ROLE

IMAGE = REGISTRY + ":pytorch-2.13-cpu-py311"
EIA_IMAGE = REGISTRY + ":pytorch-1.5-eia-py38"


def request(**kw: Any) -> DeployRequest:
    values = dict(
        endpoint="flowers",
        image=IMAGE,
        model_data="s3://bucket/flowers/model.tar.gz",
        role=ROLE,
        instance_type="ml.m5.large",
        env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
    )
    values.update(kw)
    return DeployRequest(**values)  # type: ignore[arg-type]


def run(aws: Aws, req: DeployRequest, dry_run: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = deploy(aws.clients, req, "s1", aws.waiter(), 1800, out, dry_run=dry_run)
    return code, out.getvalue()


# --- package ------------------------------------------------------------------------------


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "model.pt").write_bytes(b"weights")
    (model / "sub" / "vocab.txt").write_text("a\nb\n")
    (model / "__pycache__").mkdir()
    (model / "__pycache__" / "x.pyc").write_bytes(b"junk")
    code = tmp_path / "code"
    (code / "lib").mkdir(parents=True)
    (code / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    (code / "requirements.txt").write_text("numpy\n")
    (code / "lib" / "helper.py").write_text("X = 1\n")
    return model, code


def test_package_lays_out_what_sagemaker_extracts(tmp_path: Path) -> None:
    model, code = _tree(tmp_path)
    out = tmp_path / "dist" / "model.tar.gz"
    package_model(model, code, out)
    with tarfile.open(str(out), "r:gz") as tar:
        names = tar.getnames()
        assert {m.uname for m in tar.getmembers()} == {"root"}
        script = tar.extractfile("code/inference.py")
        assert script is not None and script.read().startswith(b"def model_fn")
    assert names == [
        "model.pt", "sub/vocab.txt", "code/inference.py", "code/requirements.txt",
        "code/lib/helper.py",
    ]  # fmt: skip
    again = tmp_path / "again.tar.gz"
    package_model(model, code, again)
    # same inputs, same times: the same bytes
    package_model(model, code, out, mtime=0)
    package_model(model, code, again, mtime=0)
    assert out.read_bytes() == again.read_bytes()


def test_package_refuses_two_code_folders_and_an_empty_model(tmp_path: Path) -> None:
    from eikit.errors import ConfigurationError

    model, code = _tree(tmp_path)
    (model / "code").mkdir()
    with pytest.raises(ConfigurationError, match="already has a code/ folder"):
        package_model(model, code, tmp_path / "m.tar.gz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match="no model files"):
        package_model(empty, code, tmp_path / "m.tar.gz")


def test_package_cli_then_eikit_local_layout(tmp_path: Path, capsys: Any) -> None:
    model, code = _tree(tmp_path)
    out = tmp_path / "model.tar.gz"
    assert (
        main(["package", "--model-dir", str(model), "--code-dir", str(code), "-o", str(out)]) == 0
    )
    assert "5 files" in capsys.readouterr().out
    from eikit.local import layout_model_tree

    base = layout_model_tree(out, None, tmp_path / "work")
    assert (base / "model" / "code" / "inference.py").is_file()
    assert (base / "model" / "model.pt").read_bytes() == b"weights"


# --- images -------------------------------------------------------------------------------


def test_instance_types_map_to_targets_and_images() -> None:
    # Inf1 (NeuronCore v1) and Inf2/Trn1 (v2) share nothing at run time: two targets
    assert target_for("ml.inf1.xlarge") == "inf1"
    assert target_for("ml.inf2.8xlarge") == target_for("ml.trn1.2xlarge") == "inf2"
    assert target_for("ml.g4dn.xlarge") == target_for("ml.g5.2xlarge") == "gpu"
    assert target_for("ml.c6i.xlarge") == target_for("ml.m5.large") == "cpu"
    for bad, why in (("ml.eia2.medium", "Elastic Inference"), ("m5.large", "not a SageMaker"),
                     ("ml.c7g.xlarge", "Graviton"), ("ml.zz9.large", "does not know")):  # fmt: skip
        with pytest.raises(CloudError, match=why):
            target_for(bad)
    image = parse_image(REGISTRY + ":pytorch-1.5-eia-py38")
    assert image is not None and (image.framework, image.target) == ("pytorch", "eia")
    assert image.with_target("inf1").uri == REGISTRY + ":pytorch-1.13-inf1-py310"
    assert image.with_target("inf2").uri == REGISTRY + ":pytorch-2.9-inf2-py312"
    assert image.ecr == ("123456789012", "us-east-1", "eikit")
    assert parse_image("python:3.11") is None
    assert parse_image(REGISTRY + "@sha256:" + "0" * 64) is None
    assert build_command(image.with_target("gpu"), None) == (
        "eikit build --framework pytorch --target gpu && eikit push --repository eikit "
        "--tag pytorch-2.13-gpu-py312 --region us-east-1"
    )


# --- deploy -------------------------------------------------------------------------------


def test_deploy_creates_model_config_and_endpoint_with_ei(aws: Aws) -> None:
    ei = request(accelerator_type="ml.eia2.medium", instance_count=2, image=EIA_IMAGE)
    code, out = run(aws, ei)
    assert code == 0, out
    assert "endpoint flowers is InService (config flowers-s1)" in out
    sm = aws.sm
    model = sm.describe_model(ModelName="flowers-s1")
    assert model["PrimaryContainer"] == {
        "Image": EIA_IMAGE,
        "ModelDataUrl": "s3://bucket/flowers/model.tar.gz",
        "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
    }
    [variant] = sm.describe_endpoint_config(EndpointConfigName="flowers-s1")["ProductionVariants"]
    assert variant["AcceleratorType"] == "ml.eia2.medium"
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 2)
    assert sm.describe_endpoint(EndpointName="flowers")["EndpointStatus"] == "InService"
    assert "create_endpoint" in aws.stand_in.calls
    assert "update_endpoint" not in aws.stand_in.calls


def test_deploy_updates_an_existing_endpoint_and_waits(aws: Aws) -> None:
    eia_endpoint(aws)
    code, out = run(aws, request(multi_model=True, model_data="s3://bucket/models/"))
    assert code == 0, out
    now = aws.sm.describe_endpoint(EndpointName="flowers")
    assert now["EndpointConfigName"] == "flowers-s1"
    model = aws.sm.describe_model(ModelName="flowers-s1")
    assert model["PrimaryContainer"]["Mode"] == "MultiModel"
    assert "update_endpoint" in aws.stand_in.calls
    assert "endpoint flowers: Updating" in aws.progress.getvalue()


def test_deploy_dry_run_prints_every_call_and_makes_none(aws: Aws) -> None:
    code, out = run(aws, request(), dry_run=True)
    assert code == 0
    assert "dry run: 3 calls" in out
    for call in ("sagemaker.create_model", "sagemaker.create_endpoint_config",
                 "sagemaker.create_endpoint"):  # fmt: skip
        assert call in out
    assert '"ModelDataUrl": "s3://bucket/flowers/model.tar.gz"' in out
    assert aws.sm.list_models()["Models"] == []


def test_a_failed_update_prints_the_reason_and_log_group(aws: Aws) -> None:
    eia_endpoint(aws)
    aws.stand_in.update_outcomes = ["back"]
    code, out = run(aws, request())
    assert code == 1
    assert "the update to flowers-s1 failed; endpoint flowers still serves flowers-config" in out
    assert "did not pass the ping check" in out
    assert "CloudWatch log group /aws/sagemaker/Endpoints/flowers" in out


def test_a_failed_create_prints_the_reason(aws: Aws) -> None:
    aws.stand_in.failures["flowers"] = "Image not found"
    code, out = run(aws, request())
    assert code == 1
    assert "endpoint flowers is Failed: Image not found" in out
    assert "aws logs tail /aws/sagemaker/Endpoints/flowers --region us-east-1" in out


def test_deploy_refuses_to_update_a_scaled_endpoint(aws: Aws) -> None:
    eia_endpoint(aws)
    add_scaling(aws, "flowers")
    with pytest.raises(CloudError, match="autoscaling on variant v1.*eikit migrate endpoint"):
        run(aws, request())


@pytest.mark.parametrize(
    "change, why",
    [
        ({"role": "SageMakerRole"}, "IAM role ARN"),
        ({"model_data": "/tmp/model.tar.gz"}, "s3://"),
        ({"model_data": "s3://b/model.pt"}, "model.tar.gz"),
        ({"multi_model": True}, "ending in /"),
        ({"accelerator_type": "ml.eia3.huge"}, "ml.eia1.medium"),
        ({"endpoint": "-bad"}, "endpoint name"),
    ],
)
def test_deploy_checks_its_arguments(change: Any, why: str) -> None:
    with pytest.raises(CloudError, match=why):
        plan_deploy(request(**change), False, "s")


def test_deploy_cli(aws: Aws, capsys: Any) -> None:
    args = ["deploy", "--endpoint", "flowers", "--image", IMAGE, "--role", ROLE,
            "--model-data", "s3://bucket/flowers/model.tar.gz", "--instance-type", "ml.c5.xlarge",
            "--env", "A=1", "--name", "flowers-v1", "--poll", "0"]  # fmt: skip
    assert main(args + ["--dry-run"]) == 0
    assert '"Environment": {\n      "A": "1"\n    }' in capsys.readouterr().out
    assert main(args) == 0
    assert "endpoint flowers is InService (config flowers-v1)" in capsys.readouterr().out
    assert main(args[:-4] + ["--env", "nokey"]) == 2
    assert main(args[:-4] + ["--role", "nope"]) == 1
    assert "IAM role ARN" in capsys.readouterr().err


def test_deploy_sets_target_tracking_autoscaling(aws: Aws) -> None:
    code, out = run(aws, request(instance_count=2, autoscale=(1, 6, 500.0)))
    assert code == 0, out
    assert "autoscaling: 1-6 instances, target 500 invocations per instance" in out
    scaled = scaling_of(aws, "flowers", "AllTraffic")
    [target] = scaled["targets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 6)
    [policy] = scaled["policies"]
    assert policy["PolicyName"] == "eikit-invocations-per-instance"
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 500.0
    assert config["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }


def test_deploy_autoscaling_options(aws: Aws, capsys: Any) -> None:
    args = ["deploy", "--endpoint", "flowers", "--image", IMAGE, "--role", ROLE,
            "--model-data", "s3://bucket/flowers/model.tar.gz", "--instance-type", "ml.c5.xlarge",
            "--poll", "0"]  # fmt: skip
    assert main(args + ["--min", "2", "--max", "4"]) == 2
    assert "together" in capsys.readouterr().err
    assert main(args + ["--min", "3", "--max", "2", "--invocations-per-instance", "9"]) == 2
    assert main(args + ["--min", "2", "--max", "4", "--invocations-per-instance", "100"]) == 1
    assert "--instance-count 1 is outside --min 2 .. --max 4" in capsys.readouterr().err
    dry = args + ["--min", "1", "--max", "4", "--invocations-per-instance", "100", "--dry-run"]
    assert main(dry) == 0
    out = capsys.readouterr().out
    assert "dry run: 5 calls" in out and "put_scaling_policy" in out
    assert main(dry[:-1]) == 0
    assert scaling_of(aws, "flowers", "AllTraffic")["targets"]
