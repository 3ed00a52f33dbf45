"""For the migration (``eikit migrate endpoint --compile``): read what a model archive in S3
is compiled for, and compile it, writing the new archive beside the old one.

``s3`` is a boto3 S3 client. The old archive is never changed: the compiled one is written
next to it as ``<name>-<generation>.tar.gz`` (``s3://b/m/model.tar.gz`` ->
``s3://b/m/model-inf1.tar.gz``), and the new SageMaker Model points at that.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, List, Optional

from eikit.compile.neo import split_s3
from eikit.compile.run import CompileRequest, compile_archive, default_output
from eikit.neuron.manifest import Manifest, read_archive_manifest


def beside(url: str, generation: str) -> str:
    """Where the compiled archive goes: the old one's name with ``-<generation>``."""
    bucket, key = split_s3(url)
    folder, _, name = key.rpartition("/")
    new = default_output(Path(name or "model.tar.gz"), generation).name
    return "s3://%s/%s" % (bucket, "/".join(p for p in (folder, new) if p))


def _download(s3: Any, url: str, folder: Path) -> Path:
    bucket, key = split_s3(url)
    path = folder / (key.rpartition("/")[2] or "model.tar.gz")
    s3.download_file(bucket, key, str(path))
    return path


def manifest_in_s3(s3: Any, url: str) -> Optional[Manifest]:
    """The eikit Neuron manifest of the archive at ``url``, None when it has none."""
    with tempfile.TemporaryDirectory(prefix="eikit-manifest-") as work:
        return read_archive_manifest(_download(s3, url, Path(work)))


def compiled_generations(s3: Any, url: str) -> List[str]:
    """The generations the archive at ``url`` is compiled for (``[]``: none)."""
    manifest = manifest_in_s3(s3, url)
    return sorted(manifest.compiled) if manifest else []


def compile_beside(s3: Any, url: str, request: CompileRequest) -> str:
    """Compile the archive at ``url`` as ``request`` says (its generation, example, batch
    sizes, where: in-process, docker or neo; its source and output are set here), upload
    it beside the old one and return its URL."""
    target = beside(url, request.generation)
    with tempfile.TemporaryDirectory(prefix="eikit-compile-s3-") as work:
        source = _download(s3, url, Path(work))
        output = Path(work) / "out" / Path(split_s3(target)[1]).name
        job = dataclasses.replace(request, source=source, output=output, in_place=False)
        written, entry = compile_archive(job)
        assert written is not None
        bucket, key = split_s3(target)
        s3.upload_file(str(written), bucket, key)
    request.progress("uploaded %s (compiled for %s)" % (target, entry.describe()))
    return target
