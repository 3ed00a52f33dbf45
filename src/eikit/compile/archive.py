"""The model as ``eikit compile`` reads and writes it: a folder or a ``model.tar.gz`` copied
into a work folder (the user's files are never written to), then the compiled tree packed
into a new archive: the original model file, the same ``code/``, ``neuron/<generation>/``
with the compiled graphs, and ``eikit-neuron.json``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional

from eikit.archive import extract_archive
from eikit.cloud.package import package_model
from eikit.errors import ConfigurationError
from eikit.neuron.manifest import GRAPHS_DIR, Manifest, read_manifest, sha256_of

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
MODEL_SUFFIXES = (".pt", ".pth")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def prepare_tree(source: Path, code_dir: Optional[Path], tree: Path) -> Path:
    """A private, writable copy of the model at ``tree`` (which must not exist)."""
    if is_archive(source):
        extract_archive(source, tree)
    elif source.is_dir():
        shutil.copytree(str(source), str(tree), symlinks=False)
    else:
        raise ConfigurationError("%s is neither a model folder nor a model.tar.gz" % source)
    if code_dir is not None:
        if not code_dir.is_dir():
            raise ConfigurationError("--code-dir %s is not a folder" % code_dir)
        if (tree / "code").exists():
            raise ConfigurationError(
                "%s already has a code/ folder and --code-dir %s was given: keep one of them"
                % (source, code_dir)
            )
        shutil.copytree(str(code_dir), str(tree / "code"))
    return tree


def model_file(tree: Path) -> Path:
    """The original model file at the top of the tree: ``model.pt``, else the only one."""
    preferred = tree / "model.pt"
    if preferred.is_file():
        return preferred
    found = sorted(p for p in tree.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES)
    if len(found) == 1:
        return found[0]
    raise ConfigurationError(
        "%s: expected one TorchScript model file (model.pt) at the top of the model, found %s"
        % (tree, ", ".join(p.name for p in found) or "none")
    )


def start_manifest(tree: Path, framework: str, generation: str) -> Manifest:
    """The tree's manifest (a new one if it has none), ready for ``generation``'s graphs:
    entries compiled from another model file are dropped, and so is an earlier compile for
    this generation."""
    source = model_file(tree)
    digest = sha256_of(source)
    manifest = read_manifest(tree)
    if manifest is not None and (
        manifest.source_sha256 != digest or manifest.framework != framework
    ):
        log.warning(
            "the Neuron manifest in the model describes another model file (or framework); "
            "its compiled graphs (%s) are dropped",
            ", ".join(sorted(manifest.compiled)) or "none",
        )
        shutil.rmtree(str(tree / GRAPHS_DIR), ignore_errors=True)
        manifest = None
    if manifest is None:
        manifest = Manifest(framework, source.relative_to(tree).as_posix(), digest)
    if generation in manifest.compiled:
        log.warning("the model was compiled for %s before: compiling again", generation)
        del manifest.compiled[generation]
    shutil.rmtree(str(tree / GRAPHS_DIR / generation), ignore_errors=True)
    return manifest


def pack(tree: Path, output: Path) -> None:
    """Write the tree as ``output`` (a SageMaker model.tar.gz)."""
    package_model(tree, None, output)
