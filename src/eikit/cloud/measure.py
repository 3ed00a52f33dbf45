"""Measure a model on this machine through a real eikit server (``eikit advise``).

A ``serve`` process on a free loopback port (one worker, one thread by default: the
per-worker figures the CPU estimates scale from), loaded by client threads with keep-alive
connections for a fixed time per point. Peak memory is each worker's peak resident set
(``VmHWM`` in ``/proc/PID/status``) after the load and after each batch size.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from eikit.bench.load import Request
from eikit.bench.load import run as run_load
from eikit.errors import ConfigurationError
from eikit.local import ServerProcess, layout_model_tree


def batch_body(example: bytes, content_type: str, batch: int) -> bytes:
    """The example (one record, or a batch) repeated to ``batch`` records.

    JSON: a top-level list, or a dict with one list (``{"inputs": [[...]]}``), has its rows
    repeated; NPY: the array is tiled along its first axis. Else the example is refused.
    """
    base = content_type.split(";")[0].strip().lower()
    if base == "application/json":
        value = json.loads(example)
        rows, put = _json_rows(value)
        return json.dumps(put((rows * batch)[:batch] if rows else rows)).encode()
    if base == "application/x-npy":
        import io

        array = np.load(io.BytesIO(example), allow_pickle=False)
        out = io.BytesIO()
        np.save(out, np.concatenate([array[:1]] * batch) if array.ndim else array)
        return out.getvalue()
    raise ConfigurationError(
        'advise makes batches from JSON (a list of rows, or {"inputs": [rows]}) or NPY '
        "examples, not %s" % content_type
    )


def _json_rows(value: Any) -> Any:
    if isinstance(value, list):
        first = value[:1] if value and isinstance(value[0], list) else [value]
        return first, lambda rows: rows
    if isinstance(value, dict):
        lists = [k for k, v in value.items() if isinstance(v, list)]
        if len(lists) == 1:
            key = lists[0]
            rows = (
                value[key][:1] if value[key] and isinstance(value[key][0], list) else [value[key]]
            )
            return rows, lambda new: dict(value, **{key: new})
    raise ConfigurationError(
        "the JSON example must be a list of rows or an object with one list of rows "
        '(e.g. {"inputs": [[5.1, 3.5, 1.4, 0.2]]})'
    )


def example_array(example: bytes, content_type: str, batch: int) -> Optional[np.ndarray]:
    """The batch of ``batch`` records as an array (what the profile runs), or None."""
    try:
        body = batch_body(example, content_type, batch)
        if content_type.split(";")[0].strip().lower() == "application/x-npy":
            import io

            return np.load(io.BytesIO(body), allow_pickle=False)
        value = json.loads(body)
        rows = (
            value
            if isinstance(value, list)
            else [v for v in value.values() if isinstance(v, list)][0]
        )
        return np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError, IndexError, ConfigurationError):
        return None


@dataclass
class Point:
    batch: int
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def throughput(self) -> float:
        """Inferences (records) per second."""
        return self.requests * self.batch / self.seconds if self.seconds else 0.0


@dataclass
class Measurement:
    file_bytes: int
    load_peak_bytes: Optional[int]
    batch_peak_bytes: Dict[int, Optional[int]] = field(default_factory=dict)
    points: List[Point] = field(default_factory=list)
    startup_s: float = 0.0
    workers: int = 1


def model_file_bytes(model: Path) -> int:
    if model.is_file():
        return model.stat().st_size
    return sum(
        p.stat().st_size
        for p in model.rglob("*")
        if p.is_file() and "code" not in p.relative_to(model).parts[:1]
    )


def _children(pid: int) -> List[int]:
    kids: List[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry.name))
    return kids


def peak_rss(pid: int) -> Optional[int]:
    """The largest peak resident set among ``pid``'s child processes (the workers)."""
    if not Path("/proc/self/status").exists():
        return None
    peaks = []
    for child in _children(pid):
        try:
            for line in (Path("/proc") / str(child) / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) * 1024)
        except OSError:
            continue
    return max(peaks) if peaks else None


def _load(port: int, body: bytes, content_type: str, concurrency: int, seconds: float) -> Point:
    request = Request.invocation("http://127.0.0.1:%d" % port, body, content_type)
    result = run_load(request, concurrency, seconds, engine="python", timeout=60.0)
    if result.non_2xx:
        raise ConfigurationError(
            "the model server answered the example with %s" % result.first_failure
        )
    if result.errors:
        raise ConfigurationError(
            "requests went unanswered: %s"
            % ", ".join("%d %s" % (n, kind) for kind, n in sorted(result.errors.items()))
        )
    if not result.ok:
        raise ConfigurationError("no request finished within %.1f s" % seconds)
    return Point(0, concurrency, result.ok, result.duration_s, result.p50_ms, result.p99_ms)


def measure(
    model: Path,
    code: Optional[Path],
    example: bytes,
    content_type: str,
    batch_sizes: List[int],
    concurrencies: List[int],
    seconds: float,
    workers: int = 1,
    accelerator: str = "cpu",
    startup_timeout: float = 300.0,
    log: Optional[Path] = None,
) -> Measurement:
    """Start a server on ``model`` (and ``code``), load it, measure; always stops it."""
    with tempfile.TemporaryDirectory(prefix="eikit-advise-") as work:
        base = layout_model_tree(model, code, Path(work) / "tree")
        env = {
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
            "EIKIT_WORKER_THREADS": "1",
            "EIKIT_ACCELERATOR": accelerator,
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "WARNING",
        }
        log_path = log or Path(work) / "server.log"
        server = ServerProcess(base, env)
        began = time.monotonic()
        with open(str(log_path), "wb") as sink:
            server.start(stdout=sink)
            try:
                status = server.wait_ready(startup_timeout)
                if status != 200:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise ConfigurationError(
                        "the model server did not become ready (/ping %s):\n%s" % (status, tail)
                    )
                assert server.process is not None
                pid = server.process.pid
                result = Measurement(
                    file_bytes=model_file_bytes(base / "model"),
                    load_peak_bytes=peak_rss(pid),
                    startup_s=time.monotonic() - began,
                    workers=workers,
                )
                for batch in batch_sizes:
                    body = batch_body(example, content_type, batch)
                    _load(server.port, body, content_type, 1, min(0.3, seconds))  # warm up
                    for concurrency in concurrencies:
                        point = _load(server.port, body, content_type, concurrency, seconds)
                        point.batch = batch
                        result.points.append(point)
                    result.batch_peak_bytes[batch] = peak_rss(pid)
            finally:
                server.stop()
    return result
