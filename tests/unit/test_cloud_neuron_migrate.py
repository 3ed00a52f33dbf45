"""A migration or a deploy to Inferentia, against the moto server: the image per generation,
whether the model archive in S3 is compiled for it (its eikit-neuron.json), and what the plan
does about it. Compiling itself (the compile step) needs torch: tests/pytorch/
test_neuron_migrate.py.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, Optional

import pytest

from eikit.cli import main
from eikit.cloud import guardrails, migrate
from eikit.cloud.aws import CloudError
from eikit.cloud.deploy import DeployRequest, deploy
from eikit.cloud.neuron_plan import CompileOptions
from eikit.neuron import facts
from tests.unit.cloud_account import Aws, eia_endpoint, model_archive, push_image
from tests.unit.cloud_server import BUCKET, REGISTRY, ROLE

INF1 = REGISTRY + ":pytorch-1.13-inf1-py310"
INF2 = REGISTRY + ":pytorch-2.9-inf2-py312"
OLD_DATA = "s3://%s/flowers/model.tar.gz" % BUCKET
SUFFIX = "20260101-000000"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "request.json"
    path.write_text("[[0.5, -1.0, 2.0, 0.25]]")
    return path


def account(aws: Aws, archive: Optional[bytes] = None) -> None:
    """An EI user's endpoint whose archive is an uncompiled model.tar.gz (or ``archive``)."""
    eia_endpoint(aws, archive=archive)
    push_image(aws, "pytorch-1.13-inf1-py310")
    push_image(aws, "pytorch-2.9-inf2-py312")


def plan(aws: Aws, instance_type: str, **options: Any) -> migrate.Plan:
    opts = migrate.Options(**options)
    return migrate.plan_migration(aws.clients, "flowers", instance_type, None, SUFFIX, opts)


def beside_archive(aws: Aws, body: bytes, generation: str = "inf1") -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="flowers/model-%s.tar.gz" % generation, Body=body)


def new_container(the_plan: migrate.Plan) -> Any:
    [model] = the_plan.state["models"]
    return model["PrimaryContainer"]


# --- the plan -----------------------------------------------------------------------------


def test_inf1_and_inf2_plans_name_their_images_and_compile_step(aws: Aws, example: Path) -> None:
    account(aws)
    compile_here = CompileOptions(example=str(example))
    inf1 = plan(aws, "ml.inf1.xlarge", compile=compile_here)
    inf2 = plan(aws, "ml.inf2.xlarge", compile=compile_here)
    assert new_container(inf1)["Image"] == INF1 and new_container(inf2)["Image"] == INF2
    notes1, notes2 = "\n".join(inf1.notes), "\n".join(inf2.notes)
    assert "ml.inf1.xlarge is inf1 (NeuronCore v1): image pytorch-1.13-inf1-py310" in notes1
    assert "compiled for inf1 (torch-neuron / neuron-cc)" in notes1
    assert "ml.inf2.xlarge is inf2 (NeuronCore v2): image pytorch-2.9-inf2-py312" in notes2
    assert "compiled for inf2 (torch-neuronx / neuronx-cc)" in notes2
    assert "frozen" in notes1 and "frozen" not in notes2  # Inf1's stack is retired
    for the_plan, gen in ((inf1, "inf1"), (inf2, "inf2")):
        compiled = "s3://%s/flowers/model-%s.tar.gz" % (BUCKET, gen)
        assert the_plan.state["steps"][:2] == ["compile", "create"]
        assert new_container(the_plan)["ModelDataUrl"] == compiled
        [job] = the_plan.state["compile"]["jobs"]
        assert (job["source"], job["target"], job["generation"]) == (OLD_DATA, compiled, gen)
        text = "\n".join(the_plan.notes)
        assert (
            "%s is not compiled for Neuron (no eikit-neuron.json): the compile step " % (OLD_DATA)
            in text
        )
        assert "compile: " in text and "example %s" % example in text
        shown = [(c.service, c.operation, c.params.get("Key")) for c in the_plan.calls()[:2]]
        assert shown == [("s3", "get_object", "flowers/model.tar.gz"),
                         ("s3", "put_object", "flowers/model-%s.tar.gz" % gen)]  # fmt: skip
    # Inf1 endpoints get no deployment guardrails, Inf2 ones do
    assert inf1.state["guardrails"] is None and "guardrails" not in inf1.state["steps"]
    assert inf2.state["guardrails"] and "guardrails" in inf2.state["steps"]
    assert any("AWS excludes endpoints with Inf1 instances [docs.aws" in w for w in inf1.warnings)


def test_an_uncompiled_model_is_refused_with_the_exact_commands(aws: Aws) -> None:
    account(aws)
    with pytest.raises(CloudError) as caught:
        plan(aws, "ml.inf1.xlarge")
    text = str(caught.value)
    assert "nothing was changed" in text
    assert "%s is not compiled for Neuron (no eikit-neuron.json): on ml.inf1.xlarge it would " \
        "run on the instance's CPU, not on the NeuronCores" % OLD_DATA in text  # fmt: skip
    assert "run it again with --compile: `eikit migrate endpoint flowers --instance-type " \
        "ml.inf1.xlarge --compile --example REQUEST.json`" in text  # fmt: skip
    assert "`aws s3 cp %s model.tar.gz && eikit compile model.tar.gz --generation inf1 --example " \
        "REQUEST.json --output model-inf1.tar.gz && aws s3 cp model-inf1.tar.gz " \
        "s3://%s/flowers/model-inf1.tar.gz`" % (OLD_DATA, BUCKET) in text  # fmt: skip
    assert "--allow-uncompiled" in text
    assert aws.sm.list_models()["Models"][1:] == []  # only the user's
    # compiled for the other generation only: said so
    aws.s3.put_object(Bucket=BUCKET, Key="flowers/model.tar.gz", Body=model_archive(
        compiled_for=("inf1",)))  # fmt: skip
    with pytest.raises(CloudError, match="is compiled for inf1 only: on ml.inf2.xlarge"):
        plan(aws, "ml.inf2.xlarge")


def test_allow_uncompiled_moves_the_model_as_it_is_and_says_so(aws: Aws, tmp_path: Path) -> None:
    account(aws)
    the_plan = plan(aws, "ml.inf1.xlarge", allow_uncompiled=True)
    [warning] = [w for w in the_plan.warnings if "--allow-uncompiled" in w]
    assert "it would run on the instance's CPU" in warning and "eikit compile" in warning
    assert "compile" not in the_plan.state["steps"]
    assert new_container(the_plan)["ModelDataUrl"] == OLD_DATA
    out, since = io.StringIO(), len(aws.stand_in.calls)
    assert migrate.start(aws.clients, the_plan, tmp_path / "s.json", aws.waiter(), 3600, out) == 0
    assert "put_object" not in aws.stand_in.calls[since:]


def test_an_archive_compiled_for_the_target_is_used_as_it_is(aws: Aws, example: Path) -> None:
    account(aws, model_archive(compiled_for=("inf1", "inf2")))
    the_plan = plan(aws, "ml.inf2.xlarge", compile=CompileOptions(example=str(example)))
    assert "compile" not in the_plan.state["steps"] and the_plan.state["compile"] is None
    assert new_container(the_plan)["ModelDataUrl"] == OLD_DATA
    assert (
        "model flowers-model: %s is compiled for inf2 (eikit-neuron.json)" % (OLD_DATA)
        in the_plan.notes
    )


def test_a_compiled_archive_beside_it_is_used_only_when_made_from_the_same_model(
    aws: Aws,
) -> None:
    account(aws)
    beside_archive(aws, model_archive(b"another model", compiled_for=("inf1",)))
    with pytest.raises(CloudError, match="not compiled for Neuron"):
        plan(aws, "ml.inf1.xlarge")  # compiled from another model.pt: stale, not used
    beside_archive(aws, model_archive(compiled_for=("inf1",)))
    the_plan = plan(aws, "ml.inf1.xlarge")
    compiled = "s3://%s/flowers/model-inf1.tar.gz" % BUCKET
    assert new_container(the_plan)["ModelDataUrl"] == compiled
    assert "compile" not in the_plan.state["steps"]
    assert any("%s beside it is compiled for inf1 from the same model file" % compiled in n
               for n in the_plan.notes)  # fmt: skip


def test_compile_needs_an_example_and_warns_of_tight_parity(aws: Aws, tmp_path: Path) -> None:
    account(aws)
    with pytest.raises(CloudError, match="--compile needs an example request"):
        plan(aws, "ml.inf1.xlarge", compile=CompileOptions())
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "b.json").write_text("[[1, 2, 3, 4]]")
    (samples / "a.npy").write_bytes(b"\x93NUMPY")  # the first: the example (checked later)
    the_plan = plan(aws, "ml.inf1.xlarge", compile=CompileOptions(), samples=str(samples))
    assert the_plan.state["compile"]["example"]["file"] == str(samples / "a.npy")
    assert any("parity: --rtol 1e-05 --atol 1e-06 are tighter than a compiled model" in w
               and "--rtol 0.02 --atol 0.001" in w for w in the_plan.warnings)  # fmt: skip
    neo = plan(aws, "ml.inf1.xlarge", compile=CompileOptions(where="neo", shapes=["1x4"]))
    assert neo.state["compile"]["neo"] == {"s3": "s3://%s/flowers/eikit-neo" % BUCKET,
                                           "role": ROLE}  # fmt: skip
    assert [c.operation for c in neo.calls()[:3]] == [
        "get_object", "create_compilation_job", "put_object"]  # fmt: skip
    push_image(aws, "pytorch-2.13-cpu-py311")
    cpu = plan(aws, "ml.c5.xlarge", compile=CompileOptions(shapes=["1x4"]))
    assert "compile" not in cpu.state["steps"]
    assert any("ml.c5.xlarge is not an Inferentia or Trainium type" in w for w in cpu.warnings)


def test_a_non_pytorch_model_is_not_compiled_by_eikit(aws: Aws, example: Path) -> None:
    eia_endpoint(aws, image=REGISTRY + ":tensorflow-2.0-eia-py38")
    push_image(aws, "tensorflow-2.10-inf1-py310")
    with pytest.raises(CloudError, match="eikit compile traces PyTorch models only"):
        plan(aws, "ml.inf1.xlarge", compile=CompileOptions(example=str(example)))


def test_cli_dry_run_shows_the_compile_step(
    aws: Aws, example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    account(aws)
    monkeypatch.chdir(tmp_path)
    base = ["migrate", "endpoint", "flowers", "--instance-type", "ml.inf1.xlarge", "--dry-run"]
    assert main(base) == 1
    assert "--allow-uncompiled" in capsys.readouterr().err
    assert main(base + ["--compile", "--example", str(example)]) == 0
    out = capsys.readouterr().out
    assert "steps: compile, create, remove-scaling, update, wait, restore-scaling" in out
    assert "s3.put_object  # compiled for inf1, checked against the original" in out
    assert "dry run: nothing changed" in out
    listed = aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [o["Key"] for o in listed] == ["flowers/model.tar.gz"]
    assert main(base + ["--example", str(example)]) == 2  # --example needs --compile
    assert main(base + ["--compile", "--allow-uncompiled", "--shape", "1x4"]) == 2


def test_guardrails_exclusions_come_from_the_neuron_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    """One fact, one place: flipping it in eikit.neuron.facts flips the migration's plan."""
    traffic = guardrails.Traffic.parse("canary:50:60")
    assert guardrails.applicable(traffic, ["ml.inf2.xlarge"], [2], False)[0] == traffic
    inf2 = dataclasses.replace(facts.GENERATIONS["inf2"], guardrails=False)
    monkeypatch.setitem(facts.GENERATIONS, "inf2", inf2)
    shifted, notes = guardrails.applicable(traffic, ["ml.inf2.xlarge"], [2], False)
    assert shifted is None and "Inf2 instances" in notes[0]


# --- eikit deploy -------------------------------------------------------------------------


def deploy_request(**kw: Any) -> DeployRequest:
    values = dict(endpoint="flowers", image=INF1, model_data=OLD_DATA, role=ROLE,
                  instance_type="ml.inf1.xlarge")  # fmt: skip
    values.update(kw)
    return DeployRequest(**values)  # type: ignore[arg-type]


def run_deploy(aws: Aws, request: DeployRequest) -> str:
    out = io.StringIO()
    assert deploy(aws.clients, request, "s1", aws.waiter(), 600, out) == 0, out.getvalue()
    return out.getvalue()


@pytest.mark.parametrize(
    "image, instance_type, why",
    [
        (INF2, "ml.inf1.xlarge", "built for inf2 (torch-neuronx, NeuronCore v2; it cannot run "
                                 "on another generation), but ml.inf1.xlarge needs the inf1 "
                                 "image: use %s" % INF1),
        (INF1, "ml.inf2.xlarge", "built for inf1 (torch-neuron, NeuronCore v1; it cannot run on "
                                 "another generation), but ml.inf2.xlarge needs the inf2 image"),
        (INF1, "ml.trn1.2xlarge", "ml.trn1.2xlarge needs the inf2 image: use %s" % INF2),
        (REGISTRY + ":pytorch-2.13-cpu-py311", "ml.inf1.xlarge", "needs the inf1 image"),
        (REGISTRY + ":mxnet-1.8-inf1-py38", "ml.inf2.xlarge", "MXNet never ran on NeuronCore v2"),
    ],
)  # fmt: skip
def test_deploy_refuses_an_image_built_for_another_target(
    aws: Aws, image: str, instance_type: str, why: str
) -> None:
    with pytest.raises(CloudError) as caught:
        deploy(aws.clients, deploy_request(image=image, instance_type=instance_type), "s",
               aws.waiter(), 600, io.StringIO(), dry_run=True)  # fmt: skip
    assert why in str(caught.value)
    assert "create_model" not in aws.stand_in.calls


def test_deploy_checks_the_archive_on_inferentia(aws: Aws) -> None:
    aws.s3.create_bucket(Bucket=BUCKET)
    aws.s3.put_object(Bucket=BUCKET, Key="flowers/model.tar.gz", Body=model_archive())
    with pytest.raises(CloudError) as caught:
        run_deploy(aws, deploy_request())
    text = str(caught.value)
    assert "not compiled for Neuron (no eikit-neuron.json): on ml.inf1.xlarge it would run" in text
    assert "eikit compile model.tar.gz --generation inf1 --example REQUEST.json" in text
    assert "then --model-data s3://%s/flowers/model-inf1.tar.gz" % BUCKET in text
    beside_archive(aws, model_archive(compiled_for=("inf1",)))
    with pytest.raises(CloudError, match="deploy --model-data s3://%s/flowers/model-inf1.tar.gz, "
                       "compiled for inf1 from the same model file" % BUCKET):  # fmt: skip
        run_deploy(aws, deploy_request())
    out = run_deploy(aws, deploy_request(allow_uncompiled=True))
    assert "warning: %s is not compiled for Neuron" % OLD_DATA in out
    compiled = "s3://%s/flowers/model-inf1.tar.gz" % BUCKET
    assert "warning" not in run_deploy(aws, deploy_request(model_data=compiled))
    model = aws.sm.describe_model(ModelName="flowers-s1")["PrimaryContainer"]
    assert model["ModelDataUrl"] == compiled


def test_deploy_cli_chooses_the_image_by_instance_family(aws: Aws, capsys: Any) -> None:
    aws.s3.create_bucket(Bucket=BUCKET)
    aws.s3.put_object(Bucket=BUCKET, Key="flowers/model.tar.gz",
                      Body=model_archive(compiled_for=("inf1", "inf2")))  # fmt: skip
    args = ["deploy", "--endpoint", "flowers", "--repository", REGISTRY, "--role", ROLE,
            "--model-data", OLD_DATA, "--dry-run"]  # fmt: skip
    cpu = REGISTRY + ":pytorch-2.13-cpu-py311"
    for instance_type, image in (("ml.inf1.xlarge", INF1), ("ml.inf2.xlarge", INF2),
                                 ("ml.c5.xlarge", cpu)):  # fmt: skip
        assert main(args + ["--instance-type", instance_type]) == 0
        assert '"Image": "%s"' % image in capsys.readouterr().out
    assert main(args + ["--instance-type", "ml.inf2.xlarge", "--framework", "mxnet"]) == 1
    assert "MXNet never ran on NeuronCore v2" in capsys.readouterr().err
