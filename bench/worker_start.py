#!/usr/bin/env python
"""Forked workers against spawned ones (``EIKIT_WORKER_START``), side by side in one run.

    .venv/bin/python -m bench.worker_start [--rounds 2] [--models 4] [--out FILE.json]

For each round, and each of ``fork`` and ``spawn`` in turn (alternating, so a busy
machine's drift hits both alike), on the tiny MLP (bench/models.py) with one thread per
worker:

- a single-model server with 2 workers: seconds from ``serve`` starting to the first
  good prediction, and the PSS of the server's whole process tree when ready (frontend,
  template, workers: Linux counts each shared page once over the tree);
- the same with 4 workers: PSS per extra worker is (PSS(4) - PSS(2)) / 2;
- a multi-model endpoint (one worker per model) loading ``--models`` copies one after
  another: PSS per extra loaded model is (PSS(n) - PSS(1)) / (n - 1), and the seconds a
  load takes (``POST /models`` to its answer).

Medians over rounds, then fork ÷ spawn. See docs/performance.md ("How workers start").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import models as bench_models  # noqa: E402
from bench import server as srv  # noqa: E402
from eikit.local import ServerProcess  # noqa: E402
from eikit.procs import trees_pss  # noqa: E402

MIB = 2**20
MODES = ("fork", "spawn")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _settle_pss(pid: int) -> float:
    """The tree's PSS once two readings 0.5 s apart agree within 1 MiB (pages still being
    touched after the first answer would otherwise count half)."""
    last = trees_pss([pid]) / MIB
    for _ in range(20):
        time.sleep(0.5)
        now = trees_pss([pid]) / MIB
        if abs(now - last) < 1:
            return now
        last = now
    return last


def single(base: Path, mode: str, workers: int, body: bytes) -> Dict[str, float]:
    env = {
        "EIKIT_WORKER_START": mode,
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
        "EIKIT_WORKER_THREADS": "1",
    }
    server = ServerProcess(base, env)
    started = time.monotonic()
    server.start(stdout=(base / "server.log").open("ab"))
    try:
        while True:
            try:
                status, _ = srv.http(
                    "POST", server.url + "/invocations", body, {"Content-Type": "application/json"}
                )
            except OSError:
                status = 0
            if status == 200:
                break
            if time.monotonic() - started > 300:
                raise RuntimeError("no good prediction within 300 s (%s)" % mode)
            time.sleep(0.02)
        first_ok = time.monotonic() - started
        assert server.process is not None
        return {"first_ok_s": first_ok, "pss_mb": _settle_pss(server.process.pid)}
    finally:
        server.stop()


def multi(base: Path, mode: str, count: int) -> Dict[str, Any]:
    env = {
        "EIKIT_WORKER_START": mode,
        "SAGEMAKER_MULTI_MODEL": "true",
        "EIKIT_WORKER_THREADS": "1",
        "EIKIT_MAX_MODELS": str(count + 1),
    }
    server = ServerProcess(base, env)
    server.start(stdout=(base / "server.log").open("ab"))
    try:
        if server.wait_ready(300) != 200:
            raise RuntimeError("multi-model endpoint not ready (%s)" % mode)
        assert server.process is not None
        pss: List[float] = []
        loads: List[float] = []
        for index in range(count):
            path = base / "models" / ("m%d" % index)
            request = json.dumps({"model_name": "m%d" % index, "url": str(path)}).encode()
            began = time.monotonic()
            status, answer = srv.http(
                "POST", server.url + "/models", request, {"Content-Type": "application/json"}, 300
            )
            if status != 200:
                raise RuntimeError("load m%d: %s %r" % (index, status, answer[:300]))
            loads.append(time.monotonic() - began)
            pss.append(_settle_pss(server.process.pid))
        return {
            "pss_mb": pss,
            "per_model_mb": (pss[-1] - pss[0]) / max(1, count - 1),
            "load_s": statistics.median(loads[1:] or loads),
        }
    finally:
        server.stop()


def run(rounds: int, count: int, work: Path) -> Dict[str, Any]:
    spec = bench_models.get("mlp")
    single_base = work / "single"
    bench_models.save_torchscript(spec, single_base / "model" / "model.pt")
    multi_base = work / "multi"
    (multi_base / "model").mkdir(parents=True)
    for index in range(count):
        bench_models.save_torchscript(spec, multi_base / "models" / ("m%d" % index) / "model.pt")
    body = bench_models.request_body(spec)
    samples: Dict[str, List[Dict[str, Any]]] = {mode: [] for mode in MODES}
    for round_no in range(rounds):
        order = MODES if round_no % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            two = single(single_base, mode, 2, body)
            four = single(single_base, mode, 4, body)
            many = multi(multi_base, mode, count)
            sample = {
                "first_ok_s": two["first_ok_s"],
                "pss_2_workers_mb": two["pss_mb"],
                "pss_4_workers_mb": four["pss_mb"],
                "per_worker_mb": (four["pss_mb"] - two["pss_mb"]) / 2,
                "mme_pss_mb": many["pss_mb"],
                "per_model_mb": many["per_model_mb"],
                "model_load_s": many["load_s"],
            }
            samples[mode].append(sample)
            log("round %d %s: %s" % (round_no + 1, mode, json.dumps(sample)))
    keys = ("first_ok_s", "pss_2_workers_mb", "per_worker_mb", "per_model_mb", "model_load_s")
    medians = {
        mode: {key: statistics.median(s[key] for s in samples[mode]) for key in keys}
        for mode in MODES
    }
    ratios = {key: medians["fork"][key] / medians["spawn"][key] for key in keys}
    return {"rounds": samples, "medians": medians, "fork_over_spawn": ratios}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", type=int, default=4, help="models the MME loads")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eikit-worker-start-") as work:
        result = run(args.rounds, max(2, args.models), Path(work))
    print("%-20s %10s %10s %8s" % ("median", "fork", "spawn", "ratio"))
    for key, ratio in result["fork_over_spawn"].items():
        fork, spawn = result["medians"]["fork"][key], result["medians"]["spawn"][key]
        print("%-20s %10.2f %10.2f %8.2f" % (key, fork, spawn, ratio))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
