"""Prove a migrated endpoint answers as the old one did: record, replay, compare.

A baseline is the old endpoint's answers to sample requests (InvokeEndpoint, in the
content types the endpoint serves) and the latency of each call, kept in a JSON file.
Replaying the samples against the endpoint later gives answers to compare: numbers within
``rtol``/``atol`` (JSON, JSON lines, CSV, NPY, NPZ), everything else byte for byte, the
content type and any error exactly. The diff says where the first differences are.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from eikit import codecs
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
NUMERIC = (codecs.JSON, codecs.JSONLINES, codecs.CSV, codecs.NPY, codecs.NPZ)
SHOWN = 5  # differences quoted per sample


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


@dataclass
class Answer:
    body: bytes = b""
    content_type: str = ""
    error: str = ""
    ms: float = 0.0

    def to_json(self) -> Dict[str, Any]:
        if self.error:
            return {"error": self.error}
        return {
            "content_type": self.content_type,
            "body": base64.b64encode(self.body).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Answer:
        if data.get("error"):
            return cls(error=str(data["error"]))
        return cls(base64.b64decode(data["body"]), str(data.get("content_type", "")))


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


# --- comparison ---------------------------------------------------------------


def _decode(answer: Answer) -> Any:
    kind = codecs.media_type(answer.content_type)
    if kind == codecs.JSON:
        return json.loads(answer.body)
    if kind == codecs.JSONLINES:
        return [json.loads(line) for line in answer.body.splitlines() if line.strip()]
    return codecs.decode(answer.body, kind)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


class _Walk:
    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol, self.atol = rtol, atol
        self.found: List[str] = []

    def close(self, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= self.atol + self.rtol * abs(a)

    def differ(self, where: str, text: str) -> None:
        self.found.append("%s: %s" % (where or "$", text))

    def __call__(self, a: Any, b: Any, where: str = "$") -> None:
        if len(self.found) > SHOWN:
            return
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            self.arrays(np.asarray(a), np.asarray(b), where)
        elif _number(a) and _number(b):
            if not self.close(float(a), float(b)):
                self.differ(where, "%r, expected %r" % (b, a))
        elif isinstance(a, dict) and isinstance(b, dict):
            if sorted(a) != sorted(b):
                self.differ(where, "keys %s, expected %s" % (sorted(b), sorted(a)))
                return
            for key in sorted(a):
                self(a[key], b[key], "%s.%s" % (where, key))
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self.differ(where, "%d items, expected %d" % (len(b), len(a)))
                return
            for i, (x, y) in enumerate(zip(a, b)):
                self(x, y, "%s[%d]" % (where, i))
        elif a != b or type(a) is not type(b):
            self.differ(where, "%s, expected %s" % (_short(b), _short(a)))

    def arrays(self, a: np.ndarray, b: np.ndarray, where: str) -> None:
        if a.shape != b.shape:
            self.differ(where, "shape %s, expected %s" % (b.shape, a.shape))
            return
        if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
            x, y = a.astype(float), b.astype(float)
            bad = ~np.isclose(y, x, rtol=self.rtol, atol=self.atol, equal_nan=True)
            for index in list(zip(*np.nonzero(bad)))[: SHOWN - len(self.found) + 1]:
                at = "%s[%s]" % (where, ",".join(str(int(i)) for i in index))
                self.differ(at, "%r, expected %r" % (float(y[index]), float(x[index])))
        elif not np.array_equal(a, b):
            self.differ(where, "arrays differ")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def compare(expected: Answer, got: Answer, rtol: float, atol: float) -> List[str]:
    """Where ``got`` differs from ``expected`` (empty: the same within the tolerance)."""
    if expected.error or got.error:
        if expected.error == got.error:
            return []
        return ["error %r, expected %r" % (got.error or "none", expected.error or "none")]
    if codecs.media_type(expected.content_type) != codecs.media_type(got.content_type):
        return ["content type %s, expected %s" % (got.content_type, expected.content_type)]
    if codecs.media_type(expected.content_type) in NUMERIC:
        try:
            a, b = _decode(expected), _decode(got)
        except Exception as exc:  # not the format it says: compare bytes
            if expected.body == got.body:
                return []
            return ["answers differ and do not decode as %s (%s)" % (got.content_type, exc)]
        walk = _Walk(rtol, atol)
        if isinstance(a, dict) and all(isinstance(v, np.ndarray) for v in a.values()):
            walk({k: v for k, v in a.items()}, b)  # NPZ: arrays by name
        else:
            walk(a, b)
        return walk.found[:SHOWN]
    if expected.body == got.body:
        return []
    return ["%d bytes differ from the expected %d bytes" % (len(got.body), len(expected.body))]


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
