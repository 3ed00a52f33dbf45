"""Which SavedModels a model directory holds, found as AWS's TensorFlow Serving container
finds them (``tfs_utils.find_models``, ``find_model_versions`` and ``serve.py``'s default
model rule), so that a ``model.tar.gz`` made for that container serves the same models
under the same names here.

AWS's rule, followed exactly:

- every ``saved_model.pb`` anywhere under the model directory whose parent directory is a
  number (``1``, ``00000123``) is a version of a model; the model is the directory above
  the version, and its **name is that directory's base name**: ``model/1/saved_model.pb``
  is the model ``model`` (the model directory's own name: ``/opt/ml/model`` -> ``model``),
  ``model/half_plus_two/00000123/saved_model.pb`` is ``half_plus_two``;
- a model's versions are its numeric entries, leading zeros dropped (``00000123`` -> 123);
- the default model is ``SAGEMAKER_TFS_DEFAULT_MODEL_NAME`` if set, else the first model
  found.

Where we differ, on purpose:

- AWS walks with ``os.scandir``, whose order is the filesystem's (arbitrary), so "the first
  model found" could change between two containers of one archive. We walk in sorted name
  order: one of the orders AWS could have taken, always the same one.
- A numeric entry without a ``saved_model.pb`` (an empty ``2/``, a file named ``3``) is
  listed by AWS and then fails to load in TF Serving; here it is skipped with a warning.
- Two models with the same base name (``a/m/1``, ``b/m/1``) made TF Serving refuse its
  config; here it is a ``ConfigurationError`` naming both paths, at start-up.
- A ``SAGEMAKER_TFS_DEFAULT_MODEL_NAME`` naming no model made AWS's start-up wait for the
  model until ``SAGEMAKER_TFS_WAIT_TIME_SECONDS`` passed; here it fails at once, naming the
  models there are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Optional

from eikit.errors import ConfigurationError, NoModelFiles

log = logging.getLogger(__name__)

SAVED_MODEL = "saved_model.pb"

# name -> version -> SavedModel directory (the version directory)
Models = Dict[str, Dict[int, Path]]


def is_version(name: str) -> bool:
    """A version directory name as TF Serving takes it: ASCII digits only."""
    return name.isdigit() and name.isascii()


def _saved_model_files(path: Path) -> List[Path]:
    """Every ``saved_model.pb`` under ``path``, depth first, entries in sorted order."""
    found: List[Path] = []
    try:
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", path, exc)
        return found
    for entry in entries:
        if entry.is_dir():
            found.extend(_saved_model_files(Path(entry.path)))
        elif entry.name == SAVED_MODEL:
            found.append(Path(entry.path))
    return found


def find_model_paths(model_dir: Path) -> List[Path]:
    """The model base paths (the directories holding version directories), in the order
    AWS's ``find_models`` lists them (first found first)."""
    paths: List[Path] = []
    for saved_model in _saved_model_files(model_dir):
        version_dir = saved_model.parent
        # AWS: len(parts) >= 6 for /opt/ml/model/<v>/saved_model.pb, i.e. the file is at
        # least two levels below the model directory; and the parent must be a number.
        if version_dir == model_dir or not is_version(version_dir.name):
            continue
        base = version_dir.parent
        if base not in paths:
            paths.append(base)
    return paths


def find_versions(base: Path) -> Dict[int, Path]:
    """A model's versions: its numeric entries holding a SavedModel, leading zeros
    dropped (AWS's ``find_model_versions``), in ascending order."""
    versions: Dict[int, Path] = {}
    for entry in sorted(os.listdir(base)):
        if not is_version(entry):
            continue
        path = base / entry
        if not (path / SAVED_MODEL).is_file():
            log.warning("skipping %s: a version directory without %s", path, SAVED_MODEL)
            continue
        number = int(entry)
        if number in versions:
            raise ConfigurationError(
                "model %s has version %d twice: %s and %s" % (base, number, versions[number], path)
            )
        versions[number] = path
    return dict(sorted(versions.items()))


def discover(model_dir: Path) -> Models:
    """name -> version -> SavedModel directory, in AWS's order (the first is the default
    unless ``SAGEMAKER_TFS_DEFAULT_MODEL_NAME`` says otherwise). Empty when there is none."""
    model_dir = Path(model_dir)
    models: Models = {}
    where: Dict[str, Path] = {}
    for base in find_model_paths(model_dir):
        name = base.name
        if name in models:
            raise ConfigurationError(
                "two models are both named %r (TF Serving names a model by its directory): "
                "%s and %s; rename one" % (name, where[name], base)
            )
        versions = find_versions(base)
        if versions:
            models[name] = versions
            where[name] = base
    return models


def default_model(models: Models, name: Optional[str] = None) -> str:
    """The model a request naming none goes to: ``name`` (from
    ``SAGEMAKER_TFS_DEFAULT_MODEL_NAME``) when given, else the first model found."""
    if not models:
        raise NoModelFiles(
            "no SavedModel bundles found: TF Serving's layout is MODEL_DIR/<version>/"
            "saved_model.pb, or MODEL_DIR/<name>/<version>/saved_model.pb for several models"
        )
    if name:
        if name not in models:
            raise ConfigurationError(
                "SAGEMAKER_TFS_DEFAULT_MODEL_NAME=%s names no model here (models: %s)"
                % (name, ", ".join(sorted(models)))
            )
        return name
    return next(iter(models))


def describe(models: Models) -> str:
    """One line for the log: each model with its versions."""
    return "; ".join(
        "%s (versions %s)" % (name, ", ".join(str(v) for v in versions))
        for name, versions in models.items()
    )
