"""Compile with SageMaker Neo (``CreateCompilationJob``, target ``ml_inf1`` / ``ml_inf2``).

The model file goes to S3 alone in a ``model.tar.gz``; one job per batch size (Neo compiles
one input shape: ``DataInputConfig`` ``{"input0": [batch, ...]}``), all started at once,
then waited on with a line per status change; a failed or stopped job ends the compile
with its ``FailureReason`` and the other jobs are stopped. Each job's artifact is fetched
from ``ModelArtifacts.S3ModelArtifacts`` and its one TorchScript file handed back; the
runtime then checks it against the original as for a local compile.

Not verified against the real service: the layout of Neo's output archive (eikit takes its
only ``.pt``/``.pth`` file) and whether Neo accepts extra files; tests run moto's
CompilationJob API with a stand-in for the compiler behind it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from eikit import codecs
from eikit.archive import extract_archive
from eikit.compile.archive import MODEL_SUFFIXES, model_file
from eikit.errors import ConfigurationError
from eikit.neuron.facts import NEO_TARGETS

if TYPE_CHECKING:
    from eikit.compile.request import CompileRequest

DONE = ("COMPLETED",)
FAILED = ("FAILED", "STOPPED", "STOPPING")


@dataclass
class NeoOptions:
    s3: str  # s3://bucket/prefix for the input and the jobs' output
    role: str  # IAM role SageMaker assumes (reads and writes that prefix)
    region: Optional[str] = None
    framework_version: Optional[str] = None  # InputConfig.FrameworkVersion, when given
    target_device: Optional[str] = None  # default: the generation's (ml_inf1, ml_inf2)
    max_runtime: int = 900  # StoppingCondition.MaxRuntimeInSeconds per job
    poll: float = 15.0
    timeout: float = 3600.0
    clients: Optional[Callable[[], Tuple[Any, Any]]] = None  # (s3, sagemaker); tests
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def target(self, generation: str) -> str:
        return self.target_device or NEO_TARGETS[generation]

    def make_clients(self) -> Tuple[Any, Any]:
        if self.clients is not None:
            return self.clients()
        import boto3

        session = boto3.session.Session(region_name=self.region)
        return session.client("s3"), session.client("sagemaker")


def neo_target(request: CompileRequest) -> str:
    return (
        request.neo.target(request.generation) if request.neo else NEO_TARGETS[request.generation]
    )


def split_s3(uri: str) -> Tuple[str, str]:
    match = re.match(r"^s3://([^/]+)/?(.*)$", uri)
    if not match:
        raise ConfigurationError("%r is not an s3://bucket/prefix URI" % uri)
    return match.group(1), match.group(2).strip("/")


def example_shapes(request: CompileRequest) -> List[List[int]]:
    """Each input's shape without its batch dimension (what DataInputConfig describes)."""
    example = request.example
    if example.arrays is not None:
        arrays = list(example.arrays)
    else:
        decoded = codecs.decode(example.body or b"", example.content_type or codecs.JSON)
        values = list(decoded.values()) if isinstance(decoded, dict) else [decoded]
        arrays = [np.asarray(v) for v in values]
    return [list(int(d) for d in a.shape[1:]) for a in arrays]


def data_input_config(shapes: List[List[int]], batch: int) -> str:
    return json.dumps({"input%d" % i: [batch] + shape for i, shape in enumerate(shapes)})


def _input_archive(tree: Path, scratch: Path) -> Path:
    """A model.tar.gz with only the model file, as Neo takes PyTorch models."""
    source = model_file(tree)
    path = scratch / "neo-input.tar.gz"
    with open(str(path), "wb") as raw, gzip.GzipFile(
        filename="", fileobj=raw, mode="wb", mtime=0
    ) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:  # type: ignore[call-overload]
        tar.add(str(source), arcname=source.name)
    return path


def compile_with_neo(
    tree: Path, request: CompileRequest, sizes: List[int], scratch: Path
) -> Dict[int, Path]:
    """Run one Neo job per batch size; ``{batch size: compiled TorchScript file}``."""
    options: Optional[NeoOptions] = request.neo
    if options is None or not options.s3 or not options.role:
        raise ConfigurationError("--neo needs --s3 s3://bucket/prefix and --role ARN")
    bucket, prefix = split_s3(options.s3)
    s3, sagemaker = options.make_clients()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = "/".join(p for p in (prefix, "eikit-neo-%s-%s" % (request.generation, stamp)) if p)
    key = base + "/input/model.tar.gz"
    s3.upload_file(str(_input_archive(tree, scratch)), bucket, key)
    request.progress("neo: uploaded the model to s3://%s/%s" % (bucket, key))
    shapes = example_shapes(request)
    target = options.target(request.generation)
    jobs: Dict[int, str] = {}
    for size in sizes:
        name = ("eikit-%s-b%d-%s" % (request.generation, size, stamp))[:63]
        config: Dict[str, Any] = {
            "S3Uri": "s3://%s/%s" % (bucket, key),
            "DataInputConfig": data_input_config(shapes, size),
            "Framework": "PYTORCH",
        }
        if options.framework_version:
            config["FrameworkVersion"] = options.framework_version
        sagemaker.create_compilation_job(
            CompilationJobName=name,
            RoleArn=options.role,
            InputConfig=config,
            OutputConfig={
                "S3OutputLocation": "s3://%s/%s/output/b%d/" % (bucket, base, size),
                "TargetDevice": target,
            },
            StoppingCondition={"MaxRuntimeInSeconds": int(options.max_runtime)},
        )
        jobs[size] = name
        request.progress("neo: started %s (%s, batch size %d)" % (name, target, size))
    artifacts = wait_for_jobs(sagemaker, jobs, options, request.progress)
    return {size: _fetch(s3, uri, scratch / ("neo-b%d" % size)) for size, uri in artifacts.items()}


def wait_for_jobs(
    sagemaker: Any, jobs: Dict[int, str], options: NeoOptions, progress: Callable[[str], None]
) -> Dict[int, str]:
    """Poll until every job completes; ``{batch size: S3ModelArtifacts}``."""
    started = options.clock()
    seen: Dict[str, str] = {}
    done: Dict[int, str] = {}
    while True:
        for size, name in jobs.items():
            if size in done:
                continue
            job = sagemaker.describe_compilation_job(CompilationJobName=name)
            status = str(job.get("CompilationJobStatus"))
            if seen.get(name) != status:
                seen[name] = status
                progress("neo: %s is %s (%.0f s)" % (name, status, options.clock() - started))
            if status in DONE:
                done[size] = str(job["ModelArtifacts"]["S3ModelArtifacts"])
            elif status in FAILED:
                _stop_others(sagemaker, jobs, done, name)
                raise ConfigurationError(
                    "SageMaker Neo job %s %s: %s"
                    % (name, status.lower(), job.get("FailureReason") or "no reason given")
                )
        if len(done) == len(jobs):
            return done
        if options.clock() - started > options.timeout:
            _stop_others(sagemaker, jobs, done, None)
            raise ConfigurationError(
                "SageMaker Neo jobs still running after %.0f s: %s"
                % (options.timeout, ", ".join(n for s, n in jobs.items() if s not in done))
            )
        options.sleep(options.poll)


def _stop_others(
    sagemaker: Any, jobs: Dict[int, str], done: Dict[int, str], failed: Optional[str]
) -> None:
    for size, name in jobs.items():
        if size in done or name == failed:
            continue
        with contextlib.suppress(Exception):  # best effort: the job may have ended meanwhile
            sagemaker.stop_compilation_job(CompilationJobName=name)


def _fetch(s3: Any, uri: str, folder: Path) -> Path:
    """The compiled TorchScript inside a job's output archive."""
    bucket, key = split_s3(uri)
    if not key.endswith((".tar.gz", ".tgz")):  # a prefix: the one archive under it
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        archives = [o["Key"] for o in listed if o["Key"].endswith((".tar.gz", ".tgz"))]
        if len(archives) != 1:
            raise ConfigurationError(
                "expected one compiled archive under %s, found %d" % (uri, len(archives))
            )
        key = archives[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    download = folder.with_suffix(".tar.gz")
    s3.download_file(bucket, key, str(download))
    extract_archive(download, folder)
    found = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES
    )
    if len(found) != 1:
        raise ConfigurationError(
            "the Neo output s3://%s/%s holds %d TorchScript files (%s); expected one"
            % (bucket, key, len(found), ", ".join(p.name for p in found))
        )
    return found[0]
