"""What ``eikit detect`` says about Neuron: the host's generation and cores, and whether the
model is compiled for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from eikit.compile.command import compile_command
from eikit.errors import ConfigurationError
from eikit.neuron.facts import GENERATIONS
from eikit.neuron.host import NeuronLs, discover, run_neuron_ls
from eikit.neuron.manifest import manifest_of


def neuron_status(
    device_root: Path,
    sysfs_root: Path,
    visible: Optional[str],
    model_dir: Path,
    neuron_ls: Optional[NeuronLs] = run_neuron_ls,
) -> Optional[Dict[str, Any]]:
    """None on a host without Neuron devices; else the host and the model's state."""
    try:
        host = discover(device_root, sysfs_root, neuron_ls, visible)
    except ConfigurationError as exc:
        return {"error": str(exc)}
    if not host.devices:
        return None
    status: Dict[str, Any] = host.to_dict()
    generation = host.generation
    status["neuron_core"] = GENERATIONS[generation].neuron_core if generation else None
    model: Dict[str, Any] = {"path": str(model_dir)}
    try:
        manifest = manifest_of(model_dir) if model_dir.exists() else None
    except ConfigurationError as exc:
        manifest = None
        model["error"] = str(exc)
    compiled = sorted(manifest.compiled) if manifest else []
    model["compiled_for"] = compiled
    model["compiled_for_this_host"] = bool(generation and generation in compiled)
    if manifest is not None and generation in manifest.compiled:
        entry = manifest.compiled[str(generation)]
        model["batch_sizes"] = list(entry.batch_sizes)
        model["describe"] = entry.describe()
    elif generation:
        model["compile_command"] = compile_command(str(model_dir), generation)
    status["model"] = model
    return status


def status_lines(status: Dict[str, Any]) -> List[str]:
    """The lines ``eikit detect`` prints for ``neuron_status``."""
    if "error" in status:
        return ["neuron: %s" % status["error"]]
    generation = status["generation"]
    cores = status["cores"]
    lines = [
        "neuron: %s (%s, NeuronCore %s), %d device(s), %d core(s) (%s)"
        % (
            generation or "unknown generation",
            status["hardware"],
            status["neuron_core"] or "?",
            len(status["devices"]),
            sum(status["cores_per_device"]),
            status["core_source"],
        ),
        "neuron workers: one per core, each pinned to it (NEURON_RT_VISIBLE_CORES): %s"
        % (",".join(map(str, cores)) or "none"),
    ]
    model = status["model"]
    if model.get("compiled_for_this_host"):
        lines.append("model compiled for this host: yes, %s" % model["describe"])
    else:
        why = (
            "it is compiled for %s only" % ", ".join(model["compiled_for"])
            if model["compiled_for"]
            else "no eikit-neuron.json in %s" % model["path"]
        )
        lines.append("model compiled for this host: no (%s)" % why)
        if model.get("compile_command"):
            lines.append("  compile it: %s" % model["compile_command"])
    return lines
