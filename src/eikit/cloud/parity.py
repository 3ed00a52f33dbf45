"""Prove a migrated endpoint answers as the old one did: record, replay, compare.

A baseline is the old endpoint's answers to sample requests (InvokeEndpoint, in the
content types the endpoint serves) and the latency of each call, kept in a JSON file.
Replaying the samples against the endpoint later gives answers to compare (``answers``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from eikit import codecs
from eikit.cloud.answers import Answer, compare
from eikit.cloud.aws import Clients, CloudError, describe_error, error_code
from eikit.cloud.state import now_iso

VERSION = 1
SUFFIXES = {
    ".json": codecs.JSON,
    ".jsonl": codecs.JSONLINES,
    ".jsonlines": codecs.JSONLINES,
    ".csv": codecs.CSV,
    ".npy": codecs.NPY,
    ".npz": codecs.NPZ,
    ".bin": codecs.OCTET,
    ".txt": "text/plain",
}


@dataclass
class Sample:
    name: str
    body: bytes
    content_type: str
    accept: Optional[str] = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def default_path(endpoint: str) -> Path:
    return Path("eikit-baseline-%s.json" % endpoint)


def load_samples(
    path: Path, content_type: Optional[str] = None, accept: Optional[str] = None
) -> List[Sample]:
    """One request per file: ``path`` itself, or every file in the folder ``path``."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    elif path.is_file():
        files = [path]
    else:
        raise CloudError("--samples %s: no such file or folder" % path)
    if not files:
        raise CloudError("--samples %s: the folder has no sample files" % path)
    samples = []
    for file in files:
        kind = content_type or SUFFIXES.get(file.suffix.lower())
        if kind is None:
            raise CloudError(
                "sample %s: cannot tell its content type from %r (known: %s); pass "
                "--content-type" % (file, file.suffix, ", ".join(sorted(SUFFIXES)))
            )
        samples.append(Sample(file.name, file.read_bytes(), kind, accept))
    return samples


Clock = Callable[[], float]


def invoke(
    clients: Clients, endpoint: str, sample: Sample, clock: Clock = time.perf_counter
) -> Answer:
    params: Dict[str, Any] = {
        "EndpointName": endpoint,
        "Body": sample.body,
        "ContentType": sample.content_type,
    }
    if sample.accept:
        params["Accept"] = sample.accept
    start = clock()
    try:
        answer = clients.runtime.invoke_endpoint(**params)
        body = answer["Body"].read()
    except Exception as exc:
        ms = (clock() - start) * 1000.0
        if error_code(exc) in ("ModelError", "ModelNotReadyException", "InternalFailure"):
            status = (getattr(exc, "response", None) or {}).get("OriginalStatusCode", "")
            return Answer(error="%s %s" % (error_code(exc), status), ms=ms)
        raise CloudError(
            "InvokeEndpoint %s with sample %s failed: %s"
            % (endpoint, sample.name, describe_error(exc))
        ) from exc
    return Answer(body, str(answer.get("ContentType", "")), ms=(clock() - start) * 1000.0)


def replay(
    clients: Clients, endpoint: str, samples: List[Sample], repeat: int = 1
) -> List[Tuple[Answer, List[float]]]:
    """Each sample's first answer and the latency of every call, ``repeat`` calls each."""
    results = []
    for sample in samples:
        first = invoke(clients, endpoint, sample)
        times = [first.ms] + [invoke(clients, endpoint, sample).ms for _ in range(repeat - 1)]
        results.append((first, times))
    return results


def record(
    clients: Clients, endpoint: str, config: str, samples: List[Sample], repeat: int
) -> Dict[str, Any]:
    """The baseline: ``endpoint``'s answers to ``samples`` now, and their latency."""
    results = replay(clients, endpoint, samples, repeat)
    return {
        "version": VERSION,
        "endpoint": endpoint,
        "config": config,
        "recorded": now_iso(),
        "samples": [
            dict(
                name=s.name,
                sha256=s.sha256,
                content_type=s.content_type,
                accept=s.accept,
                answer=answer.to_json(),
                latency_ms=[round(t, 3) for t in times],
            )
            for s, (answer, times) in zip(samples, results)
        ],
    }


def save(path: Path, baseline: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n")
    partial.replace(path)


def load(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CloudError(
            "no baseline %s: record one with `eikit migrate verify ENDPOINT --samples ... "
            "--record`" % path
        ) from None
    except ValueError as exc:
        raise CloudError("%s is not a baseline: %s" % (path, exc)) from None
    if data.get("version") != VERSION or not isinstance(data.get("samples"), list):
        raise CloudError("%s is not an eikit baseline (version %d)" % (path, VERSION))
    return data


def matching(baseline: Dict[str, Any], samples: List[Sample]) -> None:
    """Refuse samples that are not the ones the baseline was recorded with."""
    recorded = {s["name"]: s["sha256"] for s in baseline["samples"]}
    given = {s.name: s.sha256 for s in samples}
    if recorded != given:
        changed = sorted(set(recorded.items()) ^ set(given.items()))
        raise CloudError(
            "the samples are not those of the baseline (%s differ): record the baseline "
            "again with --record" % ", ".join(sorted({name for name, _ in changed}))
        )


def percentiles(times: List[float]) -> Dict[str, float]:
    if not times:
        return {}
    ordered = np.sort(np.asarray(times, dtype=float))
    return {
        "p50": round(float(np.percentile(ordered, 50)), 2),
        "p99": round(float(np.percentile(ordered, 99)), 2),
        "calls": len(times),
    }


@dataclass
class Report:
    """The comparison of a replay with a baseline: differences per sample, and latency."""

    differences: Dict[str, List[str]]
    before: Dict[str, float]
    after: Dict[str, float]

    @property
    def ok(self) -> bool:
        return not self.differences

    def lines(self, rtol: float, atol: float) -> List[str]:
        count = len(self.differences)
        out = [
            "parity: %s (rtol %g, atol %g)"
            % ("every answer matches" if self.ok else "%d sample(s) differ" % count, rtol, atol)
        ]
        for name in sorted(self.differences):
            out.append("  %s:" % name)
            out += ["    %s" % line for line in self.differences[name]]
        if self.before and self.after:
            out.append(
                "latency ms: before p50 %.2f p99 %.2f (%d calls), after p50 %.2f p99 %.2f "
                "(%d calls)"
                % (
                    self.before["p50"],
                    self.before["p99"],
                    self.before["calls"],
                    self.after["p50"],
                    self.after["p99"],
                    self.after["calls"],
                )
            )
        return out

    def to_json(self) -> Dict[str, Any]:
        return {"ok": self.ok, "differences": self.differences, "before": self.before,
                "after": self.after}  # fmt: skip


def check(
    clients: Clients,
    endpoint: str,
    baseline: Dict[str, Any],
    samples: List[Sample],
    rtol: float,
    atol: float,
    repeat: int = 1,
) -> Report:
    """Replay ``samples`` against ``endpoint`` and compare with ``baseline``."""
    matching(baseline, samples)
    results = replay(clients, endpoint, samples, repeat)
    recorded = {s["name"]: s for s in baseline["samples"]}
    differences: Dict[str, List[str]] = {}
    before: List[float] = []
    after: List[float] = []
    for sample, (answer, times) in zip(samples, results):
        saved = recorded[sample.name]
        found = compare(Answer.from_json(saved["answer"]), answer, rtol, atol)
        if found:
            differences[sample.name] = found
        before += [float(t) for t in saved.get("latency_ms", [])]
        after += times
    return Report(differences, percentiles(before), percentiles(after))
