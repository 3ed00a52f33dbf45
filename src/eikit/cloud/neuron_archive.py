"""Is a model archive in S3 compiled for the Neuron generation of an instance type? For the
migration's plan and for ``eikit deploy``.

The archive is streamed (``eikit.compile.s3``): its ``eikit-neuron.json`` says what it is
compiled for. One that is not may have a compiled archive beside it (``model-inf1.tar.gz``,
what ``eikit migrate --compile`` uploads and what the by-hand commands here make), used when
its manifest names the same model file (sha256). Neither found, the model would serve on the
instance's CPU: callers refuse that unless asked (``--allow-uncompiled``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from eikit.cloud.aws import Clients, CloudError, describe_error, error_code
from eikit.cloud.images import instance_family
from eikit.compile.command import EXAMPLE_PLACEHOLDER, compile_command, output_name
from eikit.compile.s3 import ArchiveScan, beside, compiled_beside, scan_archive
from eikit.errors import ConfigurationError
from eikit.neuron.facts import generation_of_family

_MISSING = ("NoSuchKey", "NoSuchBucket", "404", "NotFound")


@dataclass
class ArchiveState:
    """What the archive at ``url`` is for ``generation``, as far as it could be read."""

    url: str
    generation: str
    scan: Optional[ArchiveScan] = None  # None: not read (see ``unreadable``)
    beside: Optional[str] = None  # a compiled archive beside it, of the same model file
    unreadable: Optional[str] = None  # why it was not read (permissions, not one archive)
    missing: bool = False  # no such object (preflight names it, with the fix)
    broken: Optional[str] = None  # read, but not a tar archive: SageMaker cannot use it

    @property
    def compiled(self) -> bool:
        return self.scan is not None and self.generation in self.scan.compiled

    def what(self) -> str:
        done = self.scan.compiled if self.scan else []
        if done:
            return "compiled for %s only" % ", ".join(done)
        return "not compiled for Neuron (no eikit-neuron.json)"

    def on_cpu(self, instance_type: str) -> str:
        return "%s is %s: on %s it would run on the instance's CPU, not on the NeuronCores" % (
            self.url,
            self.what(),
            instance_type,
        )


def read_archive(s3: Any, url: str, generation: str) -> ArchiveState:
    state = ArchiveState(url, generation)
    if not url.startswith("s3://") or not url.endswith((".tar.gz", ".tgz")):
        state.unreadable = "not one model.tar.gz in S3"
        return state
    try:
        state.scan = scan_archive(s3, url, generation)
        if not state.compiled:
            state.beside = compiled_beside(s3, url, generation, state.scan.model_sha256)
    except ConfigurationError as exc:
        state.scan, state.broken = None, str(exc)
    except Exception as exc:
        state.scan = None
        if any(code in error_code(exc) for code in _MISSING):
            state.missing = True
        else:
            state.unreadable = "cannot read it: %s" % describe_error(exc)
    return state


def compile_by_hand(url: str, generation: str, example: Optional[str] = None) -> str:
    """The commands that compile the archive at ``url`` on this machine and upload the
    result beside it, where a migration or ``eikit deploy`` finds it."""
    return "aws s3 cp %s model.tar.gz && %s && aws s3 cp %s %s" % (
        url,
        compile_command("model.tar.gz", generation, example),
        output_name(generation),
        beside(url, generation),
    )


def deploy_check(
    clients: Clients, url: str, instance_type: str, allow_uncompiled: bool
) -> List[str]:
    """``eikit deploy`` on a Neuron type: refuse an archive not compiled for its generation
    (unless ``allow_uncompiled``), naming the compiled one beside it or how to make it.
    Returns warnings: an archive that could not be read, or one allowed uncompiled."""
    try:
        found = generation_of_family(instance_family(instance_type))
    except ValueError as exc:
        raise CloudError(str(exc)) from None
    if found is None:
        return []
    state = read_archive(clients.s3, url, found.name)
    if state.broken:
        raise CloudError(state.broken)
    if state.missing:
        raise CloudError("%s does not exist: upload it (eikit package, aws s3 cp)" % url)
    if state.unreadable:
        return [
            "%s: %s, so eikit did not check it is compiled for %s"
            % (url, state.unreadable, found.name)
        ]
    if state.compiled:
        return []
    if state.beside:
        fix = "deploy --model-data %s, compiled for %s from the same model file" % (
            state.beside,
            found.name,
        )
    else:
        fix = (
            "compile it and deploy the result: `%s`, then --model-data %s (%s: one request "
            "body saved to a file; or `eikit migrate endpoint NAME --compile` on an endpoint)"
            % (compile_by_hand(url, found.name), beside(url, found.name), EXAMPLE_PLACEHOLDER)
        )
    if allow_uncompiled:
        return ["%s (--allow-uncompiled). To use them: %s" % (state.on_cpu(instance_type), fix)]
    raise CloudError(
        "%s. To use them: %s; or --allow-uncompiled to serve it on the CPU anyway"
        % (state.on_cpu(instance_type), fix)
    )
