"""The manifest ``eikit compile`` writes into a model archive, and what it says.

``eikit-neuron.json`` sits at the top of the model folder (beside ``model.pt``, the original,
kept so the archive still serves on a CPU). Per generation it names one compiled graph per
batch size, the non-batch shapes and dtypes the graphs take (a compiled graph has fixed
shapes; only the batch dimension may vary, by choosing a graph), the package and compiler
versions, and the parity check's outcome. One archive may hold graphs for both generations.

The batch plan is here too: a request of ``n`` records runs on the smallest compiled batch
size that holds it, padded; a request larger than every size is split into chunks of the
largest (the last one padded), or refused with a 413 that names the sizes.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from eikit.errors import BatchTooLarge, ConfigurationError
from eikit.neuron.facts import GENERATIONS

MANIFEST_NAME = "eikit-neuron.json"
FORMAT = 1
GRAPHS_DIR = "neuron"  # neuron/<generation>/model-b<N>.pt
PARITY_FILE = "parity.npz"  # neuron/<generation>/parity.npz: example inputs, expected outputs
# Neuron's compilers cast fp32 matrix work to bf16 by default, so a compiled model does not
# answer bit for bit as the original; these bound the difference (eikit compile --rtol/--atol,
# and what a migration's parity check should allow).
RTOL = 2e-2
ATOL = 1e-3


@dataclass(frozen=True)
class InputSpec:
    shape: List[int]  # without the batch dimension
    dtype: str

    def describe(self, batch: Any = "N") -> str:
        return "[%s] %s" % (", ".join(str(d) for d in [batch] + list(self.shape)), self.dtype)


@dataclass
class Compiled:
    """What was compiled for one generation."""

    generation: str
    batch_sizes: List[int]
    graphs: Dict[int, str]  # batch size -> path relative to the model folder
    inputs: List[InputSpec]
    package: str
    package_version: str
    compiler: str
    compiler_version: str
    framework_version: str
    parity: Dict[str, Any]  # checked (bool), max_abs_error, rtol, atol, batches, or reason
    how: str  # "in-process", "docker IMAGE", "SageMaker Neo job NAME"
    compiled_at: str = ""
    parity_data: Optional[str] = None

    @property
    def parity_checked(self) -> bool:
        return bool(self.parity.get("checked"))

    def describe(self) -> str:
        return "%s (NeuronCore %s), batch sizes %s, inputs %s, %s %s" % (
            self.generation,
            GENERATIONS[self.generation].neuron_core if self.generation in GENERATIONS else "?",
            ",".join(str(b) for b in self.batch_sizes),
            "; ".join(spec.describe() for spec in self.inputs),
            self.package,
            self.package_version,
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "generation": self.generation,
            "batch_sizes": list(self.batch_sizes),
            "graphs": {str(k): v for k, v in sorted(self.graphs.items())},
            "inputs": [{"shape": list(s.shape), "dtype": s.dtype} for s in self.inputs],
            "package": self.package,
            "package_version": self.package_version,
            "compiler": self.compiler,
            "compiler_version": self.compiler_version,
            "framework_version": self.framework_version,
            "parity": dict(self.parity),
            "parity_data": self.parity_data,
            "how": self.how,
            "compiled_at": self.compiled_at,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Compiled:
        graphs = {int(k): str(v) for k, v in dict(data["graphs"]).items()}
        sizes = sorted(int(b) for b in data["batch_sizes"])
        if not sizes or sorted(graphs) != sizes or min(sizes) < 1:
            raise ValueError("batch_sizes %s and graphs %s disagree" % (sizes, sorted(graphs)))
        return cls(
            generation=str(data["generation"]),
            batch_sizes=sizes,
            graphs=graphs,
            inputs=[
                InputSpec([int(d) for d in i["shape"]], str(i["dtype"])) for i in data["inputs"]
            ],
            package=str(data["package"]),
            package_version=str(data["package_version"]),
            compiler=str(data["compiler"]),
            compiler_version=str(data["compiler_version"]),
            framework_version=str(data["framework_version"]),
            parity=dict(data.get("parity") or {}),
            how=str(data.get("how", "")),
            compiled_at=str(data.get("compiled_at", "")),
            parity_data=data.get("parity_data"),
        )


@dataclass
class Manifest:
    framework: str
    source: str  # the original model file, relative to the model folder
    source_sha256: str
    compiled: Dict[str, Compiled] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "framework": self.framework,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "compiled": {name: c.to_dict() for name, c in sorted(self.compiled.items())},
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Manifest:
        if data.get("format") != FORMAT:
            raise ValueError("format %r, expected %d" % (data.get("format"), FORMAT))
        compiled = {str(k): Compiled.from_dict(v) for k, v in dict(data["compiled"]).items()}
        for name, entry in compiled.items():
            if name != entry.generation or name not in GENERATIONS:
                raise ValueError("compiled entry %r is not a known generation" % name)
        return cls(
            str(data["framework"]), str(data["source"]), str(data["source_sha256"]), compiled
        )


def parse_manifest(text: str, where: str) -> Manifest:
    try:
        return Manifest.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            "%s is not a valid eikit Neuron manifest: %s" % (where, exc)
        ) from exc


def read_manifest(model_dir: Path) -> Optional[Manifest]:
    """The manifest in a model folder, None when there is none."""
    path = Path(model_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    return parse_manifest(path.read_text(encoding="utf-8"), str(path))


def read_archive_manifest(archive: Path) -> Optional[Manifest]:
    """The manifest inside a ``model.tar.gz`` (read without extracting the rest)."""
    try:
        with tarfile.open(str(archive), "r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.lstrip("./") == MANIFEST_NAME:
                    handle = tar.extractfile(member)
                    if handle is None:
                        return None
                    return parse_manifest(
                        handle.read().decode("utf-8"), "%s:%s" % (archive, member.name)
                    )
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ConfigurationError("cannot read %s: %s" % (archive, exc)) from exc
    return None


def manifest_of(model: Path) -> Optional[Manifest]:
    """The manifest of a model folder or a model archive."""
    model = Path(model)
    return read_manifest(model) if model.is_dir() else read_archive_manifest(model)


def compiled_for(model: Path, generation: str) -> Optional[Compiled]:
    """What the model folder or archive holds compiled for ``generation``; None if nothing.

    For the migration: "is this archive compiled for Inf1 / Inf2?"."""
    manifest = manifest_of(model)
    return manifest.compiled.get(generation) if manifest else None


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    path = Path(model_dir) / MANIFEST_NAME
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def graph_path(generation: str, batch: int) -> str:
    return "%s/%s/model-b%d.pt" % (GRAPHS_DIR, generation, batch)


# --- the batch plan ------------------------------------------------------------------


def plan_batches(records: int, sizes: Sequence[int], split: bool) -> List[Tuple[int, int]]:
    """``[(records in the chunk, compiled batch size it runs at), ...]`` for a request of
    ``records`` records; BatchTooLarge when it exceeds every size and ``split`` is off."""
    ordered = sorted(set(int(s) for s in sizes))
    if not ordered:
        raise ConfigurationError("no compiled batch sizes")
    if records < 1:
        raise ValueError("a batch holds at least one record")
    largest = ordered[-1]
    if records > largest and not split:
        raise BatchTooLarge(
            "the request holds %d records; the model was compiled for batch sizes %s, so it "
            "takes at most %d per request (send smaller batches, or compile for larger ones "
            "with eikit compile --batch-sizes; EIKIT_SPLIT_BATCHES=true splits them instead)"
            % (records, ", ".join(str(s) for s in ordered), largest)
        )
    plan: List[Tuple[int, int]] = []
    left = records
    while left > largest:
        plan.append((largest, largest))
        left -= largest
    plan.append((left, next(size for size in ordered if size >= left)))
    return plan
