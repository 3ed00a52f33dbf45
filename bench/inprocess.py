"""The in-process baseline: decode + forward + encode in a loop, no HTTP, no server.

It does per request what eikit's default handlers do, nothing more:

* JSON: ``json.loads`` -> ``np.asarray(..., float32)``;
  NPY: ``np.load(BytesIO, allow_pickle=False)``
  (dtype kept);
* ``torch.from_numpy`` -> model forward under ``torch.inference_mode()``;
* ``out.numpy().tolist()`` -> ``json.dumps`` -> bytes.

``run_parallel`` starts N fresh processes of this file (one torch thread each, like the
server's workers), lets each load the TorchScript file and warm up, starts them together,
and sums their rates. The file is also a script (the child side); it imports only the
standard library, numpy and torch.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

JSON = "application/json"
NPY = "application/x-npy"


def decode(body: bytes, content_type: str) -> np.ndarray:
    if content_type == JSON:
        return np.asarray(json.loads(body), dtype=np.float32)
    if content_type == NPY:
        return np.load(io.BytesIO(body), allow_pickle=False)
    raise ValueError(f"cannot decode {content_type}")


def encode(prediction: Any) -> bytes:
    return json.dumps(prediction.numpy().tolist()).encode()


def make_handler(model: Any, content_type: str) -> Callable[[bytes], bytes]:
    import torch

    def handle(body: bytes) -> bytes:
        x = torch.from_numpy(decode(body, content_type))
        with torch.inference_mode():
            y = model(x)
        return encode(y)

    return handle


def load_model(path: str, threads: int = 1) -> Any:
    import warnings

    import torch

    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(path, map_location="cpu")
    model.eval()
    return model


def percentile_ms(samples_ns: List[int], q: float) -> float:
    """Nearest-rank percentile of nanosecond samples, in ms."""
    if not samples_ns:
        return float("nan")
    s = sorted(samples_ns)
    k = min(len(s) - 1, max(0, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k] / 1e6


def loop(handle: Callable[[bytes], bytes], body: bytes, seconds: float) -> Dict[str, Any]:
    """Call ``handle(body)`` back to back for ``seconds``; count and time each call."""
    lat: List[int] = []
    clock = time.perf_counter_ns
    cpu0 = time.process_time()
    t0 = clock()
    end = t0 + int(seconds * 1e9)
    now = t0
    while now < end:
        handle(body)
        t = clock()
        lat.append(t - now)
        now = t
    elapsed = (now - t0) / 1e9
    cpu = time.process_time() - cpu0
    return {"requests": len(lat), "elapsed_s": elapsed, "cpu_s": cpu, "latencies_ns": lat}


# ----------------------------------------------------------------------------- child side


def _child(argv: List[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description="in-process worker (started by run_parallel)")
    p.add_argument("--model", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--content-type", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--framework", default="torch", choices=["torch", "mxnet"])
    a = p.parse_args(argv)
    # Self-destruct if the parent never says go or the loop somehow overruns.
    signal.alarm(int(a.seconds + a.warmup + 300))
    if a.framework == "mxnet":
        import mxnet_bench  # beside this file: sys.path[0] when run as a script

        handle = mxnet_bench.make_handler(
            mxnet_bench.load_model(a.model, a.threads), a.content_type
        )
    else:
        handle = make_handler(load_model(a.model, a.threads), a.content_type)
    body = Path(a.body).read_bytes()
    out = handle(body)
    json.loads(out)  # sanity
    loop(handle, body, a.warmup)
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2
    res = loop(handle, body, a.seconds)
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# ---------------------------------------------------------------------------- parent side


def run_parallel(
    model_path: Path,
    body_path: Path,
    content_type: str,
    seconds: float,
    processes: int = 2,
    warmup: float = 1.0,
    threads: int = 1,
    python: str | None = None,
    machine_snapshot: Callable[[], Dict[str, float]] | None = None,
    framework: str = "torch",
) -> Dict[str, Any]:
    """Run ``processes`` copies of the loop at the same time; aggregate req/s and latency."""
    cmd = [
        python or sys.executable,
        str(Path(__file__).resolve()),
        "--model",
        str(model_path),
        "--body",
        str(body_path),
        "--content-type",
        content_type,
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--threads",
        str(threads),
        "--framework",
        framework,
    ]
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(processes)
    ]
    try:
        for pr in procs:
            line = pr.stdout.readline()  # children self-destruct (alarm), so this is bounded
            if line.strip() != "READY":
                raise RuntimeError(f"in-process worker failed to start (got {line!r})")
        before = machine_snapshot() if machine_snapshot else {}
        for pr in procs:  # start them together
            pr.stdin.write("go\n")
            pr.stdin.flush()
        results = []
        for pr in procs:
            line = pr.stdout.readline()  # the result comes as soon as the loop ends
            if not line.startswith("RESULT "):
                raise RuntimeError(f"in-process worker failed (got {line[:200]!r})")
            results.append(json.loads(line[len("RESULT ") :]))
        after = machine_snapshot() if machine_snapshot else {}
        for pr in procs:
            pr.communicate(timeout=60)
            if pr.returncode != 0:
                raise RuntimeError(f"in-process worker exited with {pr.returncode}")
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
    lat = [x for r in results for x in r["latencies_ns"]]
    return {
        "processes": processes,
        "seconds": seconds,
        "requests": sum(r["requests"] for r in results),
        "rps": sum(r["requests"] / r["elapsed_s"] for r in results),
        "per_process_rps": [r["requests"] / r["elapsed_s"] for r in results],
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
        "mean_ms": (sum(lat) / len(lat) / 1e6) if lat else float("nan"),
        "cpu_s": sum(r["cpu_s"] for r in results),
        "cpu_ms_per_req": 1e3 * sum(r["cpu_s"] for r in results) / max(1, len(lat)),
        "machine_before": before,
        "machine_after": after,
    }


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
