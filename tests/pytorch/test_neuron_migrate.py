"""`eikit migrate endpoint --compile` to Inferentia, against the moto server
(tests/unit/cloud_server.py): the EI user's model.tar.gz in S3 is compiled by the stand-in
``torch_neuron`` / ``torch_neuronx`` (tests/pytorch/fakes), in-process or through SageMaker
Neo (moto's CompilationJob API with tests/neuron_neo.py's service behind it), uploaded
beside the old archive, and the new model uses it.

Not verified here: what tests/pytorch/test_neuron_compile.py and test_neuron_neo.py do not
verify either (real Neuron compilers, NeuronCores, Neo's output layout).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, List

import pytest

pytest.importorskip("moto")

from eikit.cloud import migrate  # noqa: E402
from eikit.cloud.aws import CloudError  # noqa: E402
from eikit.cloud.neuron_plan import CompileOptions  # noqa: E402
from eikit.cloud.state import StateFile  # noqa: E402
from eikit.compile.s3 import manifest_in_s3  # noqa: E402
from tests.frameworks import torch_linear_archive  # noqa: E402
from tests.neuron_neo import NeoService  # noqa: E402
from tests.unit.cloud_account import (  # noqa: E402
    Aws,
    eia_endpoint,
    model_archive,
    push_image,
)
from tests.unit.cloud_server import BUCKET, REGISTRY, ROLE  # noqa: E402

OLD_DATA = "s3://%s/flowers/model.tar.gz" % BUCKET
IMAGES = {
    "inf1": REGISTRY + ":pytorch-1.13-inf1-py310",
    "inf2": REGISTRY + ":pytorch-2.9-inf2-py312",
}
SUFFIX = "20260101-000000"


def account(aws: Aws, tmp_path: Path) -> bytes:
    archive = torch_linear_archive(tmp_path / "user")
    eia_endpoint(aws, archive=archive)
    push_image(aws, "pytorch-1.13-inf1-py310")
    push_image(aws, "pytorch-2.9-inf2-py312")
    (tmp_path / "request.json").write_text("[[0.5, -1.0, 2.0, 0.25]]")
    return archive


def plan(aws: Aws, tmp_path: Path, instance_type: str, **compile_options: Any) -> migrate.Plan:
    options = CompileOptions(example=str(tmp_path / "request.json"), **compile_options)
    opts = migrate.Options(compile=options)
    return migrate.plan_migration(aws.clients, "flowers", instance_type, None, SUFFIX, opts)


def start(aws: Aws, tmp_path: Path, the_plan: migrate.Plan) -> int:
    state = tmp_path / "state.json"
    return migrate.start(aws.clients, the_plan, state, aws.waiter(), 3600, aws.progress)


def serving(aws: Aws) -> Any:
    """The container of the model the endpoint serves now."""
    config_name = aws.sm.describe_endpoint(EndpointName="flowers")["EndpointConfigName"]
    config = aws.sm.describe_endpoint_config(EndpointConfigName=config_name)
    model = config["ProductionVariants"][0]["ModelName"]
    return aws.sm.describe_model(ModelName=model)["PrimaryContainer"]


def keys(aws: Aws) -> List[str]:
    return sorted(o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"])


@pytest.mark.parametrize("generation, module", [("inf1", "torch_neuron"),
                                                ("inf2", "torch_neuronx")])  # fmt: skip
def test_compile_in_process_uploads_beside_the_old_archive_and_the_new_model_uses_it(
    aws: Aws, standins: Any, tmp_path: Path, generation: str, module: str
) -> None:
    archive = account(aws, tmp_path)
    the_plan = plan(aws, tmp_path, "ml.%s.xlarge" % generation, where="in-process",
                    batch_sizes=[1, 4])  # fmt: skip
    assert start(aws, tmp_path, the_plan) == 0, aws.progress.getvalue()
    compiled = "s3://%s/flowers/model-%s.tar.gz" % (BUCKET, generation)
    # the compile ran through the generation's package, one graph per batch size
    assert [(c["module"], c["shapes"]) for c in standins.calls] == [
        (module, [[1, 4]]), (module, [[4, 4]])]  # fmt: skip
    manifest = manifest_in_s3(aws.s3, compiled)
    assert manifest is not None and list(manifest.compiled) == [generation]
    assert manifest.compiled[generation].batch_sizes == [1, 4]
    assert manifest.compiled[generation].parity["checked"]
    weights = aws.s3.get_object(Bucket=BUCKET, Key="flowers/model.tar.gz")["Body"].read()
    assert weights == archive  # the old archive is left as it was
    # the endpoint serves the compiled archive with the generation's image
    assert serving(aws) == {
        "Image": IMAGES[generation],
        "ModelDataUrl": compiled,
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
    }
    out = aws.progress.getvalue()
    assert "compiling %s for %s (model flowers-model)" % (OLD_DATA, generation) in out
    assert "uploaded %s (compiled for %s" % (compiled, generation) in out
    # planned again, the compiled archive beside the old one is found: nothing to compile
    again = migrate.plan_migration(aws.clients, "flowers", "ml.%s.2xlarge" % generation, None,
                                   "later")  # fmt: skip
    assert "compile" not in again.state["steps"]
    assert again.state["models"] == []  # the model serving now already has it


def test_compile_with_neo_through_the_compilation_job_api(
    aws: Aws, standins: Any, tmp_path: Path
) -> None:
    account(aws, tmp_path)
    neo = NeoService(aws.s3)
    aws.stand_in.neo = neo.describe
    the_plan = plan(aws, tmp_path, "ml.inf1.xlarge", where="neo", batch_sizes=[1, 4])
    assert "compile: with SageMaker Neo (target ml_inf1)" in "\n".join(the_plan.notes)
    assert start(aws, tmp_path, the_plan) == 0, aws.progress.getvalue()
    jobs = [
        aws.sm.describe_compilation_job(CompilationJobName=j["CompilationJobName"])
        for j in aws.sm.list_compilation_jobs()["CompilationJobSummaries"]
    ]
    assert len(jobs) == 2 and len(neo.compiled) == 2
    for job in jobs:
        assert job["RoleArn"] == ROLE  # the model's execution role
        assert job["OutputConfig"]["TargetDevice"] == "ml_inf1"
        assert job["OutputConfig"]["S3OutputLocation"].startswith(
            "s3://%s/flowers/eikit-neo/" % BUCKET
        )
    assert sorted(json.loads(j["InputConfig"]["DataInputConfig"])["input0"][0] for j in jobs) == [
        1, 4]  # fmt: skip
    compiled = "s3://%s/flowers/model-inf1.tar.gz" % BUCKET
    manifest = manifest_in_s3(aws.s3, compiled)
    assert manifest is not None and manifest.compiled["inf1"].how == "SageMaker Neo, target ml_inf1"
    assert serving(aws)["ModelDataUrl"] == compiled
    assert "neo: eikit-inf1-b1-" in aws.progress.getvalue()


def test_a_failed_compile_changes_nothing_and_resume_tries_again(
    aws: Aws, standins: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account(aws, tmp_path)
    the_plan = plan(aws, tmp_path, "ml.inf1.xlarge", where="in-process")
    monkeypatch.setenv("EIKIT_STANDIN_PERTURB", "0.5")  # the "compiler" answers wrongly
    with pytest.raises(CloudError) as caught:
        start(aws, tmp_path, the_plan)
    text = str(caught.value)
    assert "compiling %s for inf1 failed" % OLD_DATA in text
    assert "does not answer as the original does" in text
    assert "nothing on the endpoint changed: `eikit migrate resume --state" in text
    assert serving(aws)["ModelDataUrl"] == OLD_DATA
    assert keys(aws) == ["flowers/model.tar.gz"]
    state = StateFile.load(tmp_path / "state.json")
    assert state.step == "planned" and state.data["completed"] == []
    monkeypatch.delenv("EIKIT_STANDIN_PERTURB")
    migration = migrate.Migration(aws.clients, state, aws.waiter(), 3600, aws.progress)
    assert migration.execute() == 0
    assert serving(aws)["ModelDataUrl"] == "s3://%s/flowers/model-inf1.tar.gz" % BUCKET


def test_an_archive_replaced_after_the_plan_is_not_compiled(
    aws: Aws, standins: Any, tmp_path: Path
) -> None:
    account(aws, tmp_path)
    the_plan = plan(aws, tmp_path, "ml.inf1.xlarge", where="in-process")
    aws.s3.put_object(Bucket=BUCKET, Key="flowers/model.tar.gz", Body=model_archive(b"other"))
    with pytest.raises(CloudError, match="changed since the migration was planned"):
        start(aws, tmp_path, the_plan)
    assert standins.calls == [] and keys(aws) == ["flowers/model.tar.gz"]


def test_the_compiled_archive_holds_the_same_model_file(
    aws: Aws, standins: Any, tmp_path: Path
) -> None:
    """What lets a compiled archive beside the old one be found again: its manifest names
    the sha256 of the old archive's model.pt."""
    account(aws, tmp_path)
    assert start(aws, tmp_path, plan(aws, tmp_path, "ml.inf2.xlarge", where="in-process")) == 0
    manifest = manifest_in_s3(aws.s3, "s3://%s/flowers/model-inf2.tar.gz" % BUCKET)
    model = (tmp_path / "user" / "model" / "model.pt").read_bytes()
    assert manifest is not None and manifest.source_sha256 == hashlib.sha256(model).hexdigest()
