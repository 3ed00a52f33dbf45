"""Size a measured model against EI accelerators and SageMaker instance types.

Every figure carries its source: ``measured`` (on this machine, through a real eikit
server, or in-process by the framework runtime) or ``estimated`` (from the measurements,
FLOPs, published peak TFLOPS and the assumptions in the targets file, which says how).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from eikit.cloud.measure import Measurement, Point
from eikit.errors import ConfigurationError
from eikit.neuron.advice import target_advice
from eikit.neuron.facts import CHECKED

GIB = float(1 << 30)
DEFAULT_TARGETS = Path(__file__).with_name("targets.json")


def fig(value: Any, source: str) -> Dict[str, Any]:
    return {"value": value, "source": source}


def load_targets(path: Optional[Path] = None) -> Dict[str, Any]:
    where = path or DEFAULT_TARGETS
    try:
        data = json.loads(where.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError("cannot read targets file %s: %s" % (where, exc)) from None
    for key in ("assumptions", "ei", "targets", "as_of"):
        if key not in data:
            raise ConfigurationError("targets file %s has no %r" % (where, key))
    return dict(data)


def _local(
    measurement: Measurement, profiles: Dict[int, Optional[Dict[str, float]]]
) -> Dict[int, Dict[str, Any]]:
    """Per batch size: p50 at the lowest concurrency, best throughput, forward time, FLOPs."""
    per: Dict[int, Dict[str, Any]] = {}
    for batch in sorted({p.batch for p in measurement.points}):
        points: List[Point] = [p for p in measurement.points if p.batch == batch]
        single = min(points, key=lambda p: p.concurrency)
        profile = profiles.get(batch) or {}
        per[batch] = {
            "p50_ms": single.p50_ms,
            "throughput": max(p.throughput for p in points),
            "forward_ms": profile.get("forward_ms"),
            "flops": profile.get("flops"),
        }
    return per


def _cost(price: float, throughput: Optional[float]) -> Optional[float]:
    if not throughput:
        return None
    return price / (throughput * 3600.0) * 1e6


def _candidate(
    row: Dict[str, Any],
    kind: str,
    price: float,
    local: Dict[int, Dict[str, Any]],
    workers_here: int,
    need_accel: float,
    peak_rss: Optional[int],
    a: Dict[str, Any],
    extra_ms: float = 0.0,
) -> Dict[str, Any]:
    notes: List[str] = []
    headroom = float(a["headroom"])
    points: List[Dict[str, Any]] = []
    if kind == "cpu":
        workers = max(1, int(row["vcpus"]))
        busy = max(1.0, row["vcpus"] * float(a["cpu_workers_per_vcpu"]))
        need = (peak_rss or 0) * workers * headroom
        fits = need <= row["memory_gb"] * GIB if peak_rss else None
        has = row["memory_gb"]
        for batch, here in local.items():
            per_worker = here["throughput"] / max(1, workers_here)
            points.append(
                {
                    "batch": batch,
                    "latency_ms": fig(here["p50_ms"], "estimated"),
                    "throughput": fig(per_worker * busy, "estimated"),
                }
            )
        notes.append("%d workers (one per vCPU), each holding the model" % workers)
        if row["type"].startswith("ml.t"):
            notes.append("burstable: sustained load runs at its CPU credit baseline")
    else:
        memory = float(row.get("accelerator_memory_gb", row.get("memory_gb")) or 0)
        has = memory
        fits = need_accel <= memory * GIB
        host = row.get("memory_gb")
        if kind != "eia" and host and peak_rss and peak_rss * headroom > host * GIB:
            fits = False
            notes.append("host memory too small for the worker")
        tflops = float(row.get("tflops", row.get("f32_tflops", 0)))
        devices = int(row.get("devices", 1))
        utilization = float(a["accelerator_utilization"])
        for batch, here in local.items():
            if here["flops"] is None or here["forward_ms"] is None:
                continue
            overhead = max(0.0, here["p50_ms"] - here["forward_ms"])
            compute = here["flops"] / (tflops * 1e12 * utilization) * 1000.0
            latency = max(1e-3, overhead + compute + extra_ms)
            points.append(
                {
                    "batch": batch,
                    "latency_ms": fig(latency, "estimated"),
                    "throughput": fig(devices * batch * 1000.0 / latency, "estimated"),
                }
            )
        if not points:
            notes.append("no FLOP count: latency and throughput not estimated")
    best = max(points, key=lambda p: p["throughput"]["value"]) if points else None
    first = points[0] if points else None
    return {
        "type": row["type"],
        "kind": kind,
        "accelerator": row.get("accelerator", ""),
        "price_hour": fig(price, "list price"),
        "fits": fig(fits, "estimated"),
        "memory_gb": has,
        "points": points,
        "cost_per_million": {
            "batch_1": fig(
                _cost(price, first["throughput"]["value"]) if first else None, "estimated"
            ),
            "best": fig(_cost(price, best["throughput"]["value"]) if best else None, "estimated"),
            "best_batch": best["batch"] if best else None,
        },
        "notes": notes,
    }


def neuron_candidate(candidate: Dict[str, Any], framework: str) -> Optional[Dict[str, Any]]:
    """A Neuron candidate's figures hold only after the model is compiled for its
    generation, and not at all on a dead end: say so in its notes (and mark a dead end as
    not fitting); returns the advice (``eikit.neuron.advice``) for the report."""
    try:
        advice = target_advice(candidate["type"], framework)
    except ValueError as exc:  # Trn2/Trn3: not served by eikit's images
        candidate["fits"] = fig(False, "estimated")
        candidate["notes"].append(str(exc))
        return None
    if advice is None:
        return None
    if advice.dead_end:
        candidate["fits"] = fig(False, "estimated")
        candidate["notes"].append("dead end: " + advice.dead_end)
    else:
        candidate["notes"].append(
            "figures assume the model compiled for %s (eikit compile --generation %s); "
            "uncompiled it runs on the host CPU" % (advice.generation, advice.generation)
        )
        candidate["notes"].append(
            "image %s (Python %s); %s stack" % (advice.image_tag, advice.python, advice.state)
        )
        if advice.cores:
            candidate["notes"].append(
                "%d NeuronCores: %d workers, each pinned to one" % (advice.cores, advice.cores)
            )
    return advice.to_dict()


def analyse(
    measurement: Measurement,
    profiles: Dict[int, Optional[Dict[str, float]]],
    targets: Dict[str, Any],
    accelerator: str = "cpu",
    framework: str = "pytorch",
) -> Dict[str, Any]:
    a = targets["assumptions"]
    local = _local(measurement, profiles)
    first = profiles.get(min(local)) if local else None
    parameter_bytes = (first or {}).get("parameter_bytes")
    flops_1 = None
    for batch in sorted(local):
        if local[batch]["flops"] is not None:
            flops_1 = local[batch]["flops"] / batch
            break
    peaks = [v for v in measurement.batch_peak_bytes.values() if v]
    peak_rss = (
        max(peaks + ([measurement.load_peak_bytes] if measurement.load_peak_bytes else []))
        if (peaks or measurement.load_peak_bytes)
        else None
    )
    activations = 0.0
    if peaks and measurement.load_peak_bytes:
        activations = max(0.0, float(max(peaks) - measurement.load_peak_bytes))
    model_bytes = float(max(measurement.file_bytes, parameter_bytes or 0))
    need_accel = (model_bytes + activations) * float(a["headroom"])

    candidates: List[Dict[str, Any]] = []
    host = next((t for t in targets["targets"] if t["type"] == targets.get("ei_host")), None)
    for row in sorted(targets["ei"], key=lambda r: (r["memory_gb"], r["price_hour"])):
        price = row["price_hour"] + (host["price_hour"] if host else 0.0)
        cand = _candidate(
            dict(row, tflops=row["f32_tflops"], devices=1),
            "eia",
            price,
            local,
            measurement.workers,
            need_accel,
            peak_rss,
            a,
            extra_ms=float(a["ei_network_ms"]),
        )
        cand["host"] = host["type"] if host else None
        cand["notes"].append(
            "EI on %s; closed to new customers since April 2023 (listed for comparison)"
            % (host["type"] if host else "its host")
        )
        candidates.append(cand)
    neuron: List[Dict[str, Any]] = []
    for row in targets["targets"]:
        candidate = _candidate(
            row,
            row["kind"],
            row["price_hour"],
            local,
            measurement.workers,
            need_accel,
            peak_rss,
            a,
        )
        if row["kind"] == "neuron":
            advice = neuron_candidate(candidate, framework)
            if advice is not None:
                neuron.append(advice)
        candidates.append(candidate)
    ei_fit = next(
        (c["type"] for c in candidates if c["kind"] == "eia" and c["fits"]["value"]), None
    )
    priced = [
        c
        for c in candidates
        if c["kind"] != "eia" and c["fits"]["value"] and c["cost_per_million"]["best"]["value"]
    ]
    cheapest = min(priced, key=lambda c: c["cost_per_million"]["best"]["value"]) if priced else None
    measured_points = []
    for p in measurement.points:
        measured_points.append(
            {
                "batch": p.batch,
                "concurrency": p.concurrency,
                "requests": p.requests,
                "seconds": fig(round(p.seconds, 3), "measured"),
                "p50_ms": fig(p.p50_ms, "measured"),
                "p99_ms": fig(p.p99_ms, "measured"),
                "throughput": fig(p.throughput, "measured"),
                "peak_rss_bytes": fig(measurement.batch_peak_bytes.get(p.batch), "measured"),
                "forward_ms": fig((profiles.get(p.batch) or {}).get("forward_ms"), "measured"),
                "flops": fig((profiles.get(p.batch) or {}).get("flops"), "measured"),
            }
        )
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "accelerator": accelerator,
            "workers": measurement.workers,
            "worker_threads": 1,
        },
        "model": {
            "file_bytes": fig(measurement.file_bytes, "measured"),
            "parameter_bytes": fig(parameter_bytes, "measured"),
            "flops_per_inference": fig(flops_1, "measured"),
            "load_peak_rss_bytes": fig(measurement.load_peak_bytes, "measured"),
            "startup_s": fig(round(measurement.startup_s, 2), "measured"),
            "accelerator_memory_need_bytes": fig(need_accel, "estimated"),
        },
        "measured": measured_points,
        "candidates": candidates,
        "framework": framework,
        "neuron": {"checked": CHECKED, "targets": neuron},
        "smallest_ei_that_fits": ei_fit,
        "cheapest_fit": cheapest["type"] if cheapest else None,
        "assumptions": a,
        "prices": {
            "as_of": targets["as_of"],
            "region": targets.get("region"),
            "about": targets.get("about", ""),
        },
    }
