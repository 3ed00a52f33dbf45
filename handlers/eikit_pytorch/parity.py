"""Does a compiled model answer as the original did? Used by ``eikit compile`` and, when the
compiled graphs could not run where they were compiled (no Neuron device there), by the
server when it loads them on the device.

The records come from the example request: its own rows first, then copies of them, each
floating-point one moved by seeded noise so that rows differ (padding and splitting mistakes
would hide among identical rows); integer inputs (token ids) are repeated as they are.
Counts cover each compiled batch size, one below and one above it (padding, then splitting),
and more than twice the largest (several chunks).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Sequence

import numpy as np

from eikit.errors import ConfigurationError
from eikit.neuron.manifest import ATOL, RTOL, Compiled

if TYPE_CHECKING:
    from eikit_pytorch.compiled import CompiledModel


def make_records(examples: Sequence[np.ndarray], count: int, seed: int = 0) -> List[np.ndarray]:
    """``count`` records per input, built from the example's rows."""
    rng = np.random.default_rng(seed)
    out = []
    for example in examples:
        rows = len(example)
        index = np.arange(count) % rows
        records = np.array(example[index], copy=True)
        if np.issubdtype(records.dtype, np.floating) and count > rows:
            scale = float(np.abs(example).mean()) or 1.0
            noise = rng.standard_normal(records[rows:].shape) * 0.1 * scale
            records[rows:] = records[rows:] + noise.astype(records.dtype)
        out.append(records)
    return out


def check_counts(sizes: Sequence[int], split: bool) -> List[int]:
    largest = max(sizes)
    counts = {1}
    for size in sizes:
        counts.update({size - 1, size, size + 1})
    counts.add(2 * largest + 1)
    return sorted(n for n in counts if n >= 1 and (split or n <= largest))


def flatten(output: Any) -> List[np.ndarray]:
    """A model's output as arrays: a tensor, or lists, tuples and dicts (by key) of them."""
    if isinstance(output, (list, tuple)):
        return [array for each in output for array in flatten(each)]
    if isinstance(output, dict):
        return [array for key in sorted(output) for array in flatten(output[key])]
    detach = getattr(output, "detach", None)
    if detach is not None:
        return [detach().cpu().numpy()]
    return [np.asarray(output)]


def compare(
    got: List[np.ndarray], want: List[np.ndarray], rtol: float, atol: float
) -> Dict[str, Any]:
    """``ok`` and the largest absolute difference; shapes must match."""
    if len(got) != len(want):
        return {"ok": False, "why": "%d outputs, the original gives %d" % (len(got), len(want))}
    worst = 0.0
    ok = True
    for a, b in zip(got, want):
        if a.shape != b.shape:
            return {"ok": False, "why": "output shape %s, the original's %s" % (a.shape, b.shape)}
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        if a64.size:
            worst = max(worst, float(np.max(np.abs(a64 - b64))))
        ok = ok and bool(np.allclose(a64, b64, rtol=rtol, atol=atol))
    return {"ok": ok, "max_abs_error": worst}


def run_parity(
    run: Callable[..., Any],
    records: Sequence[np.ndarray],
    reference: Callable[[int], List[np.ndarray]],
    counts: Sequence[int],
    rtol: float,
    atol: float,
) -> Dict[str, Any]:
    """Compare ``run`` on the first n records with ``reference(n)`` for each count."""
    import torch

    failed = []
    worst = 0.0
    for n in counts:
        with torch.no_grad():
            got = flatten(run(*[torch.from_numpy(np.ascontiguousarray(r[:n])) for r in records]))
        result = compare(got, reference(n), rtol, atol)
        worst = max(worst, float(result.get("max_abs_error", 0.0)))
        if not result["ok"]:
            failed.append(
                "%d record(s): %s"
                % (n, result.get("why") or "max abs error %.3g" % result["max_abs_error"])
            )
    return {
        "checked": True,
        "rtol": rtol,
        "atol": atol,
        "batches": list(counts),
        "max_abs_error": worst,
        "failed": failed,
    }


def verify_on_device(model: CompiledModel, model_dir: Path, entry: Compiled) -> Dict[str, Any]:
    """The parity check ``eikit compile`` could not run: the stored records through the
    loaded graphs, against the original's stored answers (first n records of each)."""
    if not entry.parity_data:
        raise ConfigurationError("the Neuron manifest has no parity data to check against")
    data = np.load(str(Path(model_dir) / entry.parity_data))
    records = [data["input%d" % i] for i in range(len(entry.inputs))]
    outputs = sorted((k for k in data.files if k.startswith("expected")), key=lambda k: int(k[8:]))
    expected = [data[k] for k in outputs]
    full = len(records[0])

    def reference(n: int) -> List[np.ndarray]:
        return [e[:n] if e.ndim >= 1 and len(e) == full else e for e in expected]

    parity = entry.parity
    counts = [
        n
        for n in (parity.get("batches") or check_counts(entry.batch_sizes, model.split))
        if n <= full and (model.split or n <= max(entry.batch_sizes))
    ]
    return run_parity(
        model,
        records,
        reference,
        counts,
        float(parity.get("rtol", RTOL)),
        float(parity.get("atol", ATOL)),
    )
