"""`eikit compile --neo` against moto, with a stand-in where moto stops short: the
service behind a CompilationJob (``tests/neuron_neo.py``: moto marks every job COMPLETED at
once and compiles nothing). S3 is moto's.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import torch

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from eikit.compile.example import Example  # noqa: E402
from eikit.compile.neo import NeoOptions  # noqa: E402
from eikit.compile.request import CompileRequest  # noqa: E402
from eikit.compile.run import compile_archive  # noqa: E402
from eikit.errors import ConfigurationError  # noqa: E402
from eikit.neuron.manifest import read_manifest  # noqa: E402
from tests.neuron_neo import NeoService  # noqa: E402

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "models"


class NeoStandIn:
    """moto's SageMaker client; DescribeCompilationJob answers as the service would."""

    def __init__(self, client: Any, s3: Any, polls: int = 2) -> None:
        self._client = client
        self.service = NeoService(s3, polls)
        self.fail = self.service.fail
        self.stopped: List[str] = []
        self.created: List[Dict[str, Any]] = []

    def create_compilation_job(self, **request: Any) -> Any:
        self.created.append(request)
        return self._client.create_compilation_job(**request)

    def stop_compilation_job(self, CompilationJobName: str) -> Any:
        self.stopped.append(CompilationJobName)
        return {}

    def describe_compilation_job(self, CompilationJobName: str) -> Dict[str, Any]:
        job = self._client.describe_compilation_job(CompilationJobName=CompilationJobName)
        return self.service.describe(job)


@pytest.fixture
def neo(monkeypatch: pytest.MonkeyPatch, standins: Any) -> Iterator[Tuple[NeoStandIn, Any]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield NeoStandIn(session.client("sagemaker"), s3), s3


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: List[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def neo_request(model: Path, out: Path, generation: str, stand_in: NeoStandIn, s3: Any,
                lines: List[str], clock: Clock) -> CompileRequest:  # fmt: skip
    options = NeoOptions(s3="s3://%s/neo" % BUCKET, role=ROLE, poll=10.0,
                         clients=lambda: (s3, stand_in), sleep=clock.sleep,
                         clock=lambda: clock.now)  # fmt: skip
    return CompileRequest(
        source=model,
        generation=generation,
        example=Example(body=b"[[1, 2, 3, 4]]", content_type="application/json"),
        batch_sizes=[1, 4],
        output=out,
        where="neo",
        neo=options,
        progress=lines.append,
        device_root=model,  # no Neuron device here
    )


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 2).eval()), str(folder / "model.pt"))
    return folder


@pytest.mark.parametrize("generation, target", [("inf1", "ml_inf1"), ("inf2", "ml_inf2")])
def test_neo_compiles_each_batch_size_in_the_cloud_with_progress(
    neo: Tuple[NeoStandIn, Any], model: Path, tmp_path: Path, generation: str, target: str
) -> None:
    stand_in, s3 = neo
    lines: List[str] = []
    clock = Clock()
    output, entry = compile_archive(
        neo_request(model, tmp_path / "neo.tar.gz", generation, stand_in, s3, lines, clock)
    )
    assert output == tmp_path / "neo.tar.gz" and output.is_file()
    # one job per batch size, the generation's target, the example's shape
    assert [
        (c["OutputConfig"]["TargetDevice"], json.loads(c["InputConfig"]["DataInputConfig"]))
        for c in stand_in.created
    ] == [(target, {"input0": [1, 4]}), (target, {"input0": [4, 4]})]
    assert {c["InputConfig"]["Framework"] for c in stand_in.created} == {"PYTORCH"}
    assert all(c["RoleArn"] == ROLE for c in stand_in.created)
    # it waited, saying so as each job moved
    assert clock.sleeps and set(clock.sleeps) == {10.0}
    assert any("is INPROGRESS" in line for line in lines)
    assert sum("is COMPLETED" in line for line in lines) == 2
    # the graphs Neo made are checked against the original like local ones
    assert entry.parity["checked"] and entry.batch_sizes == [1, 4]
    assert entry.how == "SageMaker Neo, target %s" % target
    assert entry.package_version.startswith("not reported")
    with tarfile.open(str(output)) as tar:
        tar.extractall(str(tmp_path / "x"))  # noqa: S202 (our own archive)
    manifest = read_manifest(tmp_path / "x")
    assert manifest is not None and list(manifest.compiled) == [generation]


def test_a_failed_neo_job_ends_the_compile_with_its_reason(
    neo: Tuple[NeoStandIn, Any], model: Path, tmp_path: Path
) -> None:
    stand_in, s3 = neo
    stand_in.fail["eikit-inf1-b4"] = "ClientError: Unsupported operator aten::frobnicate"
    lines: List[str] = []
    with pytest.raises(ConfigurationError) as caught:
        compile_archive(
            neo_request(model, tmp_path / "f.tar.gz", "inf1", stand_in, s3, lines, Clock())
        )
    text = str(caught.value)
    assert "SageMaker Neo job eikit-inf1-b4-" in text and "failed" in text
    assert "Unsupported operator aten::frobnicate" in text
    assert not (tmp_path / "f.tar.gz").exists()


def test_neo_needs_a_bucket_and_a_role(model: Path, tmp_path: Path) -> None:
    request = CompileRequest(
        source=model,
        generation="inf1",
        example=Example(body=b"[[1, 2, 3, 4]]", content_type="application/json"),
        where="neo",
        neo=NeoOptions(s3="", role=""),
        progress=lambda line: None,
    )
    with pytest.raises(ConfigurationError, match="--neo needs --s3"):
        compile_archive(request)


# --- what the migration calls (eikit.compile.s3) --------------------------------------------


def test_the_migration_reads_what_an_s3_archive_is_compiled_for_and_compiles_it_beside(
    neo: Tuple[NeoStandIn, Any], model: Path, tmp_path: Path
) -> None:
    from eikit.compile.s3 import beside, compile_beside, compiled_generations

    _, s3 = neo
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(str(archive), "w:gz") as tar:
        tar.add(str(model / "model.pt"), "model.pt")
    s3.upload_file(str(archive), BUCKET, "flowers/model.tar.gz")
    old = "s3://%s/flowers/model.tar.gz" % BUCKET
    assert beside(old, "inf1") == "s3://%s/flowers/model-inf1.tar.gz" % BUCKET
    assert compiled_generations(s3, old) == []
    lines: List[str] = []
    request = CompileRequest(
        source=Path("unused"),
        generation="inf1",
        example=Example(body=b"[[1, 2, 3, 4]]", content_type="application/json"),
        batch_sizes=[1, 4],
        where="in-process",
        progress=lines.append,
    )
    new = compile_beside(s3, old, request)
    assert new == beside(old, "inf1")
    assert compiled_generations(s3, new) == ["inf1"]
    assert compiled_generations(s3, old) == []  # the old archive is left as it was
    assert any(line.startswith("uploaded %s" % new) for line in lines)
