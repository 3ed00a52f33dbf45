"""The migration's compile step: each model archive the plan found uncompiled for the Neuron
target is compiled (in-process, with Docker, or with SageMaker Neo) and uploaded beside the
old one, before anything on the endpoint changes.

Like every step it reads what is there first: a compiled archive already beside the old
one, made from the same model file (a run stopped after its upload), is used, not compiled
again. The old archive must be the one the plan read (its ETag): one replaced since then
needs a new plan. A compile that fails changes nothing on the endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List

from eikit.cloud.aws import Call, Clients, CloudError, Waiter, describe_error
from eikit.compile.example import Example, from_file, from_shapes
from eikit.compile.neo import NeoOptions, split_s3
from eikit.compile.request import CompileRequest
from eikit.compile.s3 import compile_beside, compiled_beside
from eikit.errors import ConfigurationError
from eikit.neuron.facts import NEO_TARGETS

Say = Callable[[str], None]


def example_of(spec: Dict[str, Any]) -> Example:
    """The example the plan chose: a request body file, or shapes."""
    if spec.get("file"):
        return from_file(Path(spec["file"]), spec.get("content_type"))
    return from_shapes(spec["shapes"], spec.get("dtypes") or [])


def request_for(
    compile_state: Dict[str, Any],
    job: Dict[str, Any],
    clients: Clients,
    waiter: Waiter,
    timeout: float,
    say: Say,
) -> CompileRequest:
    neo = None
    if compile_state["where"] == "neo":
        given = compile_state["neo"]
        neo = NeoOptions(
            s3=given["s3"],
            role=given["role"],
            region=clients.region,
            poll=waiter.interval,
            timeout=timeout,
            clients=lambda: (clients.s3, clients.sagemaker),
            sleep=waiter.sleep,
            clock=waiter.clock,
        )
    return CompileRequest(
        source=Path("set-by-compile-beside"),
        generation=job["generation"],
        example=example_of(compile_state["example"]),
        batch_sizes=compile_state.get("batch_sizes"),
        framework=job.get("framework"),
        where=compile_state["where"],
        image=compile_state.get("image"),
        neo=neo,
        progress=lambda line: say("  " + line),
    )


def compile_models(
    clients: Clients,
    compile_state: Dict[str, Any],
    waiter: Waiter,
    timeout: float,
    say: Say,
    resume_hint: str,
) -> None:
    """Compile and upload every job's archive, or use the one already beside it."""
    s3 = clients.s3
    for job in compile_state["jobs"]:
        source, target, gen = job["source"], job["target"], job["generation"]
        bucket, key = split_s3(source)
        try:
            etag = str(s3.head_object(Bucket=bucket, Key=key).get("ETag", ""))
            found = compiled_beside(s3, source, gen, job.get("source_sha256") or {})
        except ConfigurationError as exc:
            raise CloudError(str(exc)) from None
        except Exception as exc:
            raise CloudError("cannot read %s: %s" % (source, describe_error(exc))) from exc
        if etag != job["source_etag"]:
            raise CloudError(
                "%s changed since the migration was planned (ETag %s, was %s): nothing on the "
                "endpoint changed; `eikit migrate rollback` ends this run, then plan again"
                % (source, etag, job["source_etag"])
            )
        if found == target:
            say("  %s is compiled for %s already (from the same model file): used" % (target, gen))
            continue
        say("  compiling %s for %s (model %s)" % (source, gen, job["model"]))
        try:
            compile_beside(
                s3, source, request_for(compile_state, job, clients, waiter, timeout, say)
            )
        except (ConfigurationError, ValueError) as exc:
            raise CloudError(
                "compiling %s for %s failed: %s\nnothing on the endpoint changed: %s"
                % (source, gen, exc, resume_hint)
            ) from None


def compile_calls(compile_state: Dict[str, Any]) -> List[Call]:
    """What the compile step does, as calls (``--dry-run``)."""
    calls: List[Call] = []
    neo = compile_state.get("neo")
    for job in compile_state["jobs"]:
        gen = job["generation"]
        bucket, key = split_s3(job["source"])
        params: Dict[str, Any] = {"Bucket": bucket, "Key": key}
        calls.append(Call("s3", "get_object", params, "the model to compile for %s" % gen))
        if neo:
            output = {"S3OutputLocation": neo["s3"], "TargetDevice": NEO_TARGETS[gen]}
            params = {"RoleArn": neo["role"], "OutputConfig": output}
            why = "SageMaker Neo: one job per batch size"
            calls.append(Call("sagemaker", "create_compilation_job", params, why))
        bucket, key = split_s3(job["target"])
        why = "compiled for %s, checked against the original" % gen
        calls.append(Call("s3", "put_object", {"Bucket": bucket, "Key": key}, why))
    return calls
