"""``eikit compile`` for PyTorch: trace the TorchScript model with the generation's Neuron
package, one graph per batch size, and check the graphs against the original.

Inf1: ``torch_neuron.trace`` (neuron-cc); Inf2/Trn1: ``torch_neuronx.trace`` (neuronx-cc).
Both take the model and a tuple of example inputs and return TorchScript with the compiled
graph inside; ``torch.jit.save`` writes it. The compilers run on any x86 CPU; running the
result needs a NeuronCore, so when the graphs cannot run here and no Neuron device is
present, the parity check is left to the server, which runs it on the device at load
(``parity.npz`` holds the records and the original's answers).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from eikit.accelerators import distribution_version, module_installed, neuron_device_nodes
from eikit.errors import ConfigurationError
from eikit.neuron.facts import generation as generation_facts
from eikit.neuron.manifest import (
    ATOL,
    GRAPHS_DIR,
    PARITY_FILE,
    RTOL,
    Compiled,
    InputSpec,
    graph_path,
)
from eikit_pytorch.compiled import load_compiled
from eikit_pytorch.loading import find_model_file, import_package, load_torchscript
from eikit_pytorch.parity import check_counts, flatten, make_records, run_parity
from eikit_pytorch.tensors import to_inputs

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def _version(distribution: str, module: Any, attribute: str = "__version__") -> str:
    return distribution_version(distribution) or str(getattr(module, attribute, "unknown"))


def compile_model(
    model_dir: Path,
    out_dir: Path,
    generation: str,
    example: Any,
    batch_sizes: Sequence[int],
    options: Dict[str, Any],
) -> Dict[str, Any]:
    """Write ``neuron/<generation>/model-b<N>.pt`` for each size and ``parity.npz`` under
    ``out_dir``; return the manifest entry (``Compiled.to_dict()``).

    ``options``: ``rtol``, ``atol``, ``split`` (check splitting too), ``compiler_args``
    (a list), ``workdir`` (the compiler's scratch folder), ``device_root`` (where Neuron
    devices would be), ``how`` (recorded), ``progress`` (a line callback), ``prebuilt``
    (``{batch size: path}``: graphs compiled elsewhere, by SageMaker Neo, to take instead
    of tracing).
    """
    import torch

    progress: Progress = options.get("progress") or (lambda line: log.info("%s", line))
    facts = generation_facts(generation)
    examples = example_arrays(example)
    prebuilt: Dict[int, str] = {int(k): v for k, v in (options.get("prebuilt") or {}).items()}
    module = _neuron_module(facts.module, needed=not prebuilt)
    original = load_torchscript(find_model_file(Path(model_dir)), "cpu")
    original.eval()
    sizes = sorted(set(int(b) for b in batch_sizes))
    split = bool(options.get("split", True))
    counts = check_counts(sizes, split)
    records = make_records(examples, max(counts + sizes))
    specs = [InputSpec([int(d) for d in e.shape[1:]], str(e.dtype)) for e in examples]
    folder = Path(out_dir) / GRAPHS_DIR / generation
    folder.mkdir(parents=True, exist_ok=True)
    graphs: Dict[int, str] = {}
    for size in sizes:
        relative = graph_path(generation, size)
        if size in prebuilt:
            shutil.copyfile(prebuilt[size], str(Path(out_dir) / relative))
        else:
            started = time.monotonic()
            traced = _trace(module, facts.module, original, records, size, specs, options)
            torch.jit.save(traced, str(Path(out_dir) / relative))
            progress(
                "compiled batch size %d for %s with %s.trace in %.1f s"
                % (size, generation, facts.module, time.monotonic() - started)
            )
        graphs[size] = relative
    with torch.no_grad():
        expected = flatten(original(*[torch.from_numpy(r) for r in records]))
    parity_path = folder / PARITY_FILE
    arrays = {"input%d" % i: r for i, r in enumerate(records)}
    arrays.update({"expected%d" % i: e for i, e in enumerate(expected)})
    np.savez(str(parity_path), **arrays)  # type: ignore[arg-type]
    unknown = "not reported (%s)" % options.get("how", "compiled elsewhere")
    entry = Compiled(
        generation=generation,
        batch_sizes=sizes,
        graphs=graphs,
        inputs=specs,
        package=facts.package,
        package_version=_version(facts.package, module) if not prebuilt else unknown,
        compiler=facts.compiler,
        compiler_version=_version(facts.compiler, module, "compiler_version")
        if not prebuilt
        else unknown,
        framework_version=str(torch.__version__),
        parity={},
        how=str(options.get("how", "in-process")),
        compiled_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        parity_data=parity_path.relative_to(out_dir).as_posix(),
    )
    rtol, atol = float(options.get("rtol", RTOL)), float(options.get("atol", ATOL))

    def reference(n: int) -> List[np.ndarray]:
        with torch.no_grad():
            return flatten(original(*[torch.from_numpy(r[:n]) for r in records]))

    if module is None:
        entry.parity = _deferred(rtol, atol, counts, "%s is not installed here" % facts.module)
    else:
        entry.parity = check_here(
            Path(out_dir), entry, split, records, reference, counts, rtol, atol, options
        )
    if entry.parity.get("failed"):
        raise ConfigurationError(
            "the model compiled for %s does not answer as the original does (rtol %g, atol "
            "%g): %s. No archive was written."
            % (generation, rtol, atol, "; ".join(entry.parity["failed"]))
        )
    progress(
        "parity: %s"
        % (
            "the compiled graphs answer as the original (max abs error %.3g over %s records)"
            % (entry.parity["max_abs_error"], ",".join(map(str, counts)))
            if entry.parity.get("checked")
            else "not checked here (%s); the server checks it on the Neuron device when it "
            "loads the model" % entry.parity["reason"]
        )
    )
    return entry.to_dict()


def _neuron_module(name: str, needed: bool) -> Any:
    """The generation's package; None when it is missing and only needed for the check."""
    if not needed and not module_installed(name):
        return None
    return import_package(name)


def _trace(
    module: Any,
    name: str,
    original: Any,
    records: Sequence[np.ndarray],
    size: int,
    specs: Sequence[InputSpec],
    options: Dict[str, Any],
) -> Any:
    import torch

    inputs = tuple(torch.from_numpy(np.ascontiguousarray(r[:size])) for r in records)
    kwargs: Dict[str, Any] = {}
    if options.get("workdir"):
        kwargs["compiler_workdir"] = str(Path(options["workdir"]) / ("b%d" % size))
    if options.get("compiler_args"):
        kwargs["compiler_args"] = list(options["compiler_args"])
    try:
        return module.trace(original, inputs, **kwargs)
    except Exception as exc:
        raise ConfigurationError(
            "%s.trace failed for batch size %d (inputs %s): %s: %s"
            % (
                name,
                size,
                "; ".join(spec.describe(size) for spec in specs),
                type(exc).__name__,
                exc,
            )
        ) from exc


def _deferred(rtol: float, atol: float, counts: Sequence[int], reason: str) -> Dict[str, Any]:
    return {"checked": False, "rtol": rtol, "atol": atol, "batches": list(counts), "reason": reason}


def example_arrays(example: Any) -> List[np.ndarray]:
    """The model's inputs for the example, as the default input_fn would make them from
    the same request body (or the arrays given)."""
    if example.arrays is not None:
        arrays = [np.asarray(a) for a in example.arrays]
    else:
        from eikit import codecs

        arrays = [t.numpy() for t in to_inputs(codecs.decode(example.body, example.content_type))]
    for array in arrays:
        if array.ndim < 1 or len(array) < 1:
            raise ConfigurationError(
                "the example input has shape %s: it needs a batch dimension with at least one "
                "record (e.g. [[1, 2, 3, 4]], not [1, 2, 3, 4])" % (list(array.shape),)
            )
    return arrays


def check_here(
    out_dir: Path,
    entry: Compiled,
    split: bool,
    records: Sequence[np.ndarray],
    reference: Callable[[int], List[np.ndarray]],
    counts: Sequence[int],
    rtol: float,
    atol: float,
    options: Dict[str, Any],
) -> Dict[str, Any]:
    """Run the saved graphs (through the padding and splitting the server does) against the
    original; where they cannot run and no Neuron device is here, say so instead."""
    try:
        model, _ = load_compiled(out_dir, entry, split)
        return run_parity(model, records, reference, counts, rtol, atol)
    except Exception as exc:
        devices = neuron_device_nodes(Path(options.get("device_root") or "/dev"))
        if devices:
            raise ConfigurationError(
                "the compiled graphs do not run on this host's Neuron devices: %s: %s"
                % (type(exc).__name__, exc)
            ) from exc
        first = str(exc).splitlines()[0] if str(exc) else ""
        return _deferred(
            rtol,
            atol,
            counts,
            "the compiled graphs need a NeuronCore to run and this host has none (%s: %s)"
            % (type(exc).__name__, first),
        )
