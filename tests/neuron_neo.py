"""What SageMaker Neo does behind a CompilationJob, as a stand-in, for every test that
compiles with ``--neo``: moto 5 keeps the jobs' bookkeeping but marks each COMPLETED at once,
compiles nothing and writes nothing to S3.

``NeoService.describe`` takes a job as moto describes it and returns it as the service
would: STARTING, then INPROGRESS for ``polls`` describes, then COMPLETED with the model
compiled by the stand-in ``torch_neuron`` / ``torch_neuronx`` trace (tests/pytorch/fakes,
which must be importable) at the DataInputConfig shape and written under the job's output
location as ``<name>-<target>.tar.gz``, or FAILED with the FailureReason a test asks for.
tests/pytorch/test_neuron_neo.py wraps a boto3 client with it; the moto server
(tests/unit/cloud_server.py) calls it from DescribeCompilationJob.

Not verified against the real service: Neo's output layout (eikit takes the archive's one
.pt file), its FrameworkVersion rules for ml_inf1/ml_inf2, and whether it accepts eikit's
input archive as it is.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any, Dict, List


class NeoService:
    """Plays the compiler behind moto's CompilationJob records; ``s3`` is a boto3 client."""

    def __init__(self, s3: Any, polls: int = 2) -> None:
        self.s3 = s3
        self.polls = polls
        self.described: Dict[str, int] = {}
        self.fail: Dict[str, str] = {}  # job name prefix -> FailureReason
        self.compiled: List[str] = []  # the jobs it compiled, in order
        self._artifacts: Dict[str, str] = {}

    def describe(self, job: Dict[str, Any]) -> Dict[str, Any]:
        job = dict(job)
        name = job["CompilationJobName"]
        seen = self.described[name] = self.described.get(name, 0) + 1
        if seen <= self.polls:
            job["CompilationJobStatus"] = "INPROGRESS" if seen > 1 else "STARTING"
            return job
        for prefix, reason in self.fail.items():
            if name.startswith(prefix):
                job["CompilationJobStatus"] = "FAILED"
                job["FailureReason"] = reason
                return job
        if name not in self._artifacts:
            self._artifacts[name] = self._compile(job)
            self.compiled.append(name)
        job["CompilationJobStatus"] = "COMPLETED"
        job["ModelArtifacts"] = {"S3ModelArtifacts": self._artifacts[name]}
        return job

    def _compile(self, job: Dict[str, Any]) -> str:
        import torch
        import torch_neuron
        import torch_neuronx

        source = job["InputConfig"]["S3Uri"].split("/", 3)
        raw = self.s3.get_object(Bucket=source[2], Key=source[3])["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.extractfile("model.pt")
            assert member is not None
            model = torch.jit.load(io.BytesIO(member.read()))
        shapes = json.loads(job["InputConfig"]["DataInputConfig"])
        inputs = tuple(torch.randn(*shape) for shape in shapes.values())
        target = job["OutputConfig"]["TargetDevice"]
        package = torch_neuron if target == "ml_inf1" else torch_neuronx
        compiled = io.BytesIO()
        torch.jit.save(package.trace(model, inputs), compiled)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            info = tarfile.TarInfo("compiled/model_neuron.pt")
            info.size = len(compiled.getvalue())
            tar.addfile(info, io.BytesIO(compiled.getvalue()))
        location = job["OutputConfig"]["S3OutputLocation"].split("/", 3)
        key = location[3].rstrip("/") + "/model-%s.tar.gz" % target
        self.s3.put_object(Bucket=location[2], Key=key, Body=out.getvalue())
        return "s3://%s/%s" % (location[2], key)
