"""``eikit compile`` from start to end: copy the model, compile it where asked, record the
manifest, pack the new archive.

Where it compiles: ``in-process`` (the generation's Neuron package is importable here),
``docker`` (the generation's eikit image, which has it), ``neo`` (SageMaker Neo). ``auto``
takes in-process when it can, else Docker. Whatever the way, the runtime checks the graphs
against the original (``Runtime.compile_model``) before anything is written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from eikit import codecs
from eikit.accelerators import module_installed
from eikit.compile.archive import pack, prepare_tree, start_manifest
from eikit.compile.docker import compile_in_docker
from eikit.compile.example import Example
from eikit.compile.neo import compile_with_neo, neo_target
from eikit.compile.request import WHERE, CompileRequest
from eikit.errors import ConfigurationError
from eikit.neuron.facts import generation as generation_facts
from eikit.neuron.facts import refusal, warning
from eikit.neuron.manifest import Compiled, read_manifest, write_manifest
from eikit.runtime import Runtime, find_runtime


def default_output(source: Path, generation: str) -> Path:
    name = source.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return source.parent / ("%s-%s.tar.gz" % (name or "model", generation))


def example_records(example: Example) -> int:
    """How many records the example holds (its first dimension)."""
    if example.arrays is not None:
        arrays = list(example.arrays)
    else:
        decoded = codecs.decode(example.body or b"", example.content_type or codecs.JSON)
        values = list(decoded.values()) if isinstance(decoded, dict) else [decoded]
        arrays = [np.asarray(v) for v in values]
    if not arrays or arrays[0].ndim < 1:
        raise ConfigurationError(
            "the example needs a batch dimension (a list of records, e.g. [[1, 2, 3, 4]])"
        )
    return int(arrays[0].shape[0])


def choose_where(where: str, generation: str) -> str:
    if where not in WHERE:
        raise ConfigurationError("where: one of %s" % ", ".join(WHERE))
    if where != "auto":
        return where
    module = generation_facts(generation).module
    return "in-process" if module_installed(module) else "docker"


def compile_archive(request: CompileRequest) -> Tuple[Optional[Path], Compiled]:
    """Compile ``request.source`` for its generation; returns the archive written (None with
    ``in_place``) and the manifest entry."""
    runtime = find_runtime(request.framework)
    generation_facts(request.generation)  # a known generation, or ValueError
    refused = refusal(runtime.name, request.generation)
    if refused:
        raise ConfigurationError(refused)
    caution = warning(runtime.name, request.generation)
    if caution:
        request.progress("warning: " + caution)
    sizes = sorted(set(request.batch_sizes or [example_records(request.example)]))
    where = choose_where(request.where, request.generation)
    request.progress(
        "compiling %s for %s (%s), batch sizes %s, example: %s"
        % (
            request.source,
            request.generation,
            where,
            ",".join(map(str, sizes)),
            request.example.describe(),
        )
    )
    if request.in_place:
        if not request.source.is_dir():
            raise ConfigurationError("--in-place needs a model folder, not %s" % request.source)
        entry = _compile_tree(runtime, request.source, request, sizes, where, request.source.parent)
        return None, entry
    output = request.output or default_output(request.source, request.generation)
    if output.resolve() == request.source.resolve():
        raise ConfigurationError("--output %s would replace the model it compiles" % output)
    if request.source.is_dir() and request.source.resolve() in output.resolve().parents:
        raise ConfigurationError("write --output %s outside %s" % (output, request.source))
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".eikit-compile-", dir=str(output.parent)) as work:
        tree = prepare_tree(request.source, request.code_dir, Path(work) / "model")
        entry = _compile_tree(runtime, tree, request, sizes, where, Path(work))
        pack(tree, output)
    request.progress("wrote %s (compiled for %s)" % (output, entry.describe()))
    return output, entry


def _compile_tree(
    runtime: Runtime, tree: Path, request: CompileRequest, sizes: List[int], where: str, work: Path
) -> Compiled:
    manifest = start_manifest(tree, runtime.name, request.generation)
    with tempfile.TemporaryDirectory(prefix="eikit-compiler-") as scratch:
        options = options_of(request, where)
        options["workdir"] = str(Path(scratch) / "compiler")
        if where == "docker":
            compile_in_docker(runtime.name, tree, request, sizes, Path(scratch))
            inner = read_manifest(tree)  # the container compiled into the tree
            if inner is None or request.generation not in inner.compiled:
                raise ConfigurationError(
                    "the container finished without compiling for %s" % request.generation
                )
            manifest = inner
        else:
            if where == "neo":
                prebuilt = compile_with_neo(tree, request, sizes, Path(scratch))
                options["prebuilt"] = {size: str(path) for size, path in prebuilt.items()}
                options["how"] = "SageMaker Neo, target %s" % neo_target(request)
            entry_dict = runtime.compile_model(
                tree, tree, request.generation, request.example, sizes, options
            )
            manifest.compiled[request.generation] = Compiled.from_dict(entry_dict)
    write_manifest(tree, manifest)
    return manifest.compiled[request.generation]


def options_of(request: CompileRequest, where: str) -> Dict[str, Any]:
    options: Dict[str, Any] = {
        "split": request.split,
        "compiler_args": list(request.compiler_args),
        "device_root": str(request.device_root),
        "progress": request.progress,
        "how": where,
    }
    if request.rtol is not None:
        options["rtol"] = request.rtol
    if request.atol is not None:
        options["atol"] = request.atol
    return options
