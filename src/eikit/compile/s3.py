"""For the migration and ``eikit deploy``: read what a model archive in S3 is compiled for, and
compile it, writing the new archive beside the old one.

``s3`` is a boto3 S3 client. The old archive is never changed: the compiled one is written
next to it as ``<name>-<generation>.tar.gz`` (``s3://b/m/model.tar.gz`` ->
``s3://b/m/model-inf1.tar.gz``), and the new SageMaker Model points at that.

Archives are read as a stream, never saved: the manifest (``eikit-neuron.json``) comes
before ``model.pt`` in the archives eikit writes (their entries are sorted), so a compiled
archive is read only up to it; an uncompiled one is read through once, hashing its model
file, which is how a compiled archive found beside it is known to hold the same model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from eikit.compile.archive import MODEL_SUFFIXES
from eikit.compile.neo import split_s3
from eikit.compile.request import CompileRequest
from eikit.compile.run import compile_archive, default_output
from eikit.errors import ConfigurationError
from eikit.neuron.manifest import MANIFEST_NAME, Manifest, parse_manifest


def beside(url: str, generation: str) -> str:
    """Where the compiled archive goes: the old one's name with ``-<generation>``."""
    bucket, key = split_s3(url)
    folder, _, name = key.rpartition("/")
    new = default_output(Path(name or "model.tar.gz"), generation).name
    return "s3://%s/%s" % (bucket, "/".join(p for p in (folder, new) if p))


@dataclass
class ArchiveScan:
    """What a model archive in S3 holds, as far as it was read."""

    url: str
    etag: str
    manifest: Optional[Manifest] = None
    model_sha256: Dict[str, str] = field(default_factory=dict)  # top-level model files

    @property
    def compiled(self) -> List[str]:
        return sorted(self.manifest.compiled) if self.manifest else []

    def holds_source_of(self, other: Manifest) -> bool:
        """Whether ``other`` (a compiled archive's manifest) was compiled from this
        archive's model file."""
        return other.source_sha256 in self.model_sha256.values()


def scan_archive(
    s3: Any, url: str, generation: Optional[str] = None, hashes: bool = True
) -> ArchiveScan:
    """Stream the archive at ``url``: its manifest, and (``hashes``) the sha256 of its
    top-level model files. Stops at the manifest when it has ``generation`` compiled, or
    when no hashes are wanted. ConfigurationError when it is not a readable tar archive."""
    bucket, key = split_s3(url)
    answer = s3.get_object(Bucket=bucket, Key=key)
    scan = ArchiveScan(url, str(answer.get("ETag", "")))
    body = answer["Body"]
    try:
        with tarfile.open(fileobj=body, mode="r|*") as tar:
            for member in tar:
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                if not member.isfile() or "/" in name:
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                if name == MANIFEST_NAME:
                    text = handle.read().decode("utf-8")
                    scan.manifest = parse_manifest(text, "%s:%s" % (url, member.name))
                    if not hashes or (generation and generation in scan.manifest.compiled):
                        break
                elif hashes and name.lower().endswith(MODEL_SUFFIXES):
                    digest = hashlib.sha256()
                    chunk = handle.read(1 << 20)
                    while chunk:
                        digest.update(chunk)
                        chunk = handle.read(1 << 20)
                    scan.model_sha256[name] = digest.hexdigest()
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise ConfigurationError("%s is not a readable model.tar.gz: %s" % (url, exc)) from exc
    finally:
        body.close()
    return scan


def manifest_in_s3(s3: Any, url: str) -> Optional[Manifest]:
    """The eikit Neuron manifest of the archive at ``url``, None when it has none."""
    return scan_archive(s3, url, hashes=False).manifest


def compiled_generations(s3: Any, url: str) -> List[str]:
    """The generations the archive at ``url`` is compiled for (``[]``: none)."""
    return scan_archive(s3, url, hashes=False).compiled


def compiled_beside(s3: Any, url: str, generation: str, sources: Dict[str, str]) -> Optional[str]:
    """The archive beside ``url`` (``beside(url, generation)``) when it exists, is compiled
    for ``generation`` and was compiled from a model file whose sha256 is one of
    ``sources``' values (the old archive's model files); else None."""
    target = beside(url, generation)
    bucket, key = split_s3(target)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _missing(exc):
            return None
        raise
    scan = scan_archive(s3, target, generation, hashes=False)
    manifest = scan.manifest
    if manifest is None or generation not in manifest.compiled:
        return None
    return target if manifest.source_sha256 in sources.values() else None


def _missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def compile_beside(s3: Any, url: str, request: CompileRequest) -> str:
    """Compile the archive at ``url`` as ``request`` says (its generation, example, batch
    sizes, where: in-process, docker or neo; its source and output are set here), upload
    it beside the old one and return its URL."""
    target = beside(url, request.generation)
    with tempfile.TemporaryDirectory(prefix="eikit-compile-s3-") as work:
        bucket, key = split_s3(url)
        source = Path(work) / (key.rpartition("/")[2] or "model.tar.gz")
        s3.download_file(bucket, key, str(source))
        output = Path(work) / "out" / Path(split_s3(target)[1]).name
        job = dataclasses.replace(request, source=source, output=output, in_place=False)
        written, entry = compile_archive(job)
        assert written is not None
        bucket, key = split_s3(target)
        s3.upload_file(str(written), bucket, key)
    request.progress("uploaded %s (compiled for %s)" % (target, entry.describe()))
    return target
