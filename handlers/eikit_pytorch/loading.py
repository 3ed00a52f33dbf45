"""Which file in the model directory is the model, and loading it as TorchScript.

The default ``model_fn`` loads TorchScript only (``torch.jit.load``). It never unpickles
an eager model or a checkpoint: ``torch.load`` of a whole model runs arbitrary pickled
code, and a state_dict (even with ``weights_only=True``) is useless without the class that
owns it. Both cases get an error that says to save with ``torch.jit.save`` or to write a
``model_fn``.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any, List, Optional

from eikit.errors import ConfigurationError, NoModelFiles

MODEL_FILE = "model.pt"
MODEL_SUFFIXES = (".pt", ".pth")


def model_candidates(model_dir: Path) -> List[Path]:
    return sorted(
        path
        for path in model_dir.iterdir()
        if path.suffix.lower() in MODEL_SUFFIXES and path.is_file()
    )


def find_model_file(model_dir: Path) -> Path:
    """``model.pt``, else the only ``*.pt`` / ``*.pth`` file in ``model_dir``."""
    if not model_dir.is_dir():
        raise NoModelFiles("model directory %s does not exist" % model_dir)
    preferred = model_dir / MODEL_FILE
    if preferred.is_file():
        return preferred
    candidates = model_candidates(model_dir)
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise ConfigurationError(
            "%s holds %d model files (%s) and no %s: rename the one to serve to %s, "
            "or load it in model_fn"
            % (
                model_dir,
                len(candidates),
                ", ".join(path.name for path in candidates),
                MODEL_FILE,
                MODEL_FILE,
            )
        )
    raise NoModelFiles(
        "no model file in %s: add a TorchScript %s (torch.jit.save), or define model_fn "
        "in the inference script" % (model_dir, MODEL_FILE)
    )


def not_torchscript(path: Path) -> Optional[str]:
    """What ``path`` is when it is not TorchScript; None when it looks like TorchScript."""
    try:
        if zipfile.is_zipfile(str(path)):
            with zipfile.ZipFile(str(path)) as archive:
                names = archive.namelist()
            if any(name.endswith("constants.pkl") or "/code/" in name for name in names):
                return None
            if any(name.endswith("data.pkl") for name in names):
                return "a torch.save archive (an eager model or a state_dict)"
            return "a zip archive without TorchScript code"
        with open(str(path), "rb") as handle:
            head = handle.read(2)
    except OSError as exc:
        return "unreadable (%s)" % exc
    if head[:1] == b"\x80":
        return "a pickle (torch.save in the legacy format: an eager model or a state_dict)"
    return "not a PyTorch file"


# What the TorchScript code of a graph compiled by torch-neuron or torch-neuronx calls (their
# ops and classes are registered under the "neuron" namespace). Not checked against real
# compiled artifacts here: none can be made without AWS's packages.
_NEURON_MARKERS = (b"ops.neuron.", b"classes.neuron.")


def looks_neuron_compiled(path: Path) -> bool:
    """Whether a TorchScript file calls Neuron ops (compiled without eikit's manifest)."""
    try:
        if not zipfile.is_zipfile(str(path)):
            return False
        with zipfile.ZipFile(str(path)) as archive:
            for name in archive.namelist():
                code = "/code/" in name and name.endswith(".py")
                if code and any(marker in archive.read(name) for marker in _NEURON_MARKERS):
                    return True
    except (OSError, zipfile.BadZipFile):
        return False
    return False


def load_torchscript(path: Path, map_location: Optional[str]) -> Any:
    import torch

    try:
        return torch.jit.load(str(path), map_location=map_location)
    except Exception as exc:
        what = not_torchscript(path)
        if what is not None:
            raise ConfigurationError(
                "%s is not TorchScript: it is %s. The default model_fn loads only TorchScript "
                "and never unpickles eager models (that can run arbitrary code). Save the "
                "model with torch.jit.save(torch.jit.script(model), '%s'), or define model_fn "
                "in the inference script to build the model and load its weights."
                % (path, what, MODEL_FILE)
            ) from exc
        raise ConfigurationError(
            "TorchScript model %s does not load with torch %s: %s: %s"
            % (path, torch.__version__, type(exc).__name__, exc)
        ) from exc


def import_package(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # an accelerator plugin built for another torch fails many ways
        raise ConfigurationError(
            "%s does not import (%s: %s)" % (name, type(exc).__name__, exc)
        ) from exc
