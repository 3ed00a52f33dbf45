"""``eikit package``: a ``model.tar.gz`` laid out as SageMaker unpacks it.

SageMaker extracts the archive into ``/opt/ml/model``: the model files sit at the top of the
archive and the inference script under ``code/`` (``code/inference.py``,
``code/requirements.txt``, ``code/lib/``). Links are followed (their targets are packed),
entries are sorted and owned by root, so the same folders give the same archive.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path
from typing import List, Optional, Tuple

from eikit.errors import ConfigurationError

SKIPPED = ("__pycache__", ".git", ".DS_Store", ".ipynb_checkpoints")


def _files(root: Path, prefix: str) -> List[Tuple[Path, str]]:
    found: List[Tuple[Path, str]] = []
    for folder, dirs, files in os.walk(str(root), followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        for name in sorted(files):
            if name in SKIPPED or name.endswith(".pyc"):
                continue
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            found.append((path, prefix + relative))
    return found


def package_model(
    model_dir: Path, code_dir: Optional[Path], output: Path, mtime: Optional[float] = None
) -> List[str]:
    """Write ``output`` (a .tar.gz) from ``model_dir`` and ``code_dir``; returns its names.

    ``code_dir`` becomes ``code/``; a ``model_dir/code`` folder is packed as it is when no
    ``code_dir`` is given, and refused when one is (two scripts would be ambiguous).
    """
    if not model_dir.is_dir():
        raise ConfigurationError("--model-dir %s is not a folder" % model_dir)
    if code_dir is not None and not code_dir.is_dir():
        raise ConfigurationError("--code-dir %s is not a folder" % code_dir)
    if code_dir is not None and (model_dir / "code").exists():
        raise ConfigurationError(
            "%s already has a code/ folder and --code-dir %s was given: keep one of them"
            % (model_dir, code_dir)
        )
    out = output.resolve()
    for source in [model_dir] + ([code_dir] if code_dir else []):
        if source.resolve() in out.parents:
            raise ConfigurationError("write %s outside %s" % (output, source))
    entries = _files(model_dir, "")
    if code_dir is not None:
        entries += _files(code_dir, "code/")
    entries = [(p, n) for p, n in entries if p.resolve() != out]
    if not any(not name.startswith("code/") for _, name in entries):
        raise ConfigurationError("%s holds no model files" % model_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    # gzip's own header time is fixed too, so equal inputs give equal bytes
    with open(str(partial), "wb") as raw, gzip.GzipFile(
        filename="", fileobj=raw, mode="wb", mtime=0
    ) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:  # type: ignore[call-overload]
        for path, name in entries:
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o644 | (info.mode & 0o111)
            if mtime is not None:
                info.mtime = int(mtime)
            with open(str(path), "rb") as handle:
                tar.addfile(info, handle)
    os.replace(str(partial), str(output))
    return [name for _, name in entries]


def describe_archive(path: Path) -> str:
    """One line: size and entry count of a packed archive."""
    with tarfile.open(str(path), "r:gz") as tar:
        count = len(tar.getmembers())
    return "%s: %d files, %.1f KiB" % (path, count, path.stat().st_size / 1024.0)
