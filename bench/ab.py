#!/usr/bin/env python
"""Two server settings side by side: the cost of a feature, as a ratio from one run.

    .venv/bin/python bench/ab.py --b EIKIT_METRICS=false [--model mlp] [--rounds 5]
                                 [--duration 5] [--concurrency 16] [--workers 2]

The bench's own models (bench/models.py) through ``eikit bench``'s runner: servers A (the
default settings plus ``--a K=V``) and B (``--b K=V``), started afresh each round, loaded in
alternating rounds (A B, B A, ...); the medians of req/s and server CPU per request, and
B ÷ A. ``eikit bench MODEL --b K=V`` does the same for any model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import models  # noqa: E402
from eikit.bench import report, runner  # noqa: E402


def settings(items: List[str]) -> dict:
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError("expected NAME=VALUE, got %r" % item)
        found[name] = value
    return found


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare two server settings side by side (bench/ab.py).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--a", action="append", default=[], help="NAME=VALUE for server A")
    p.add_argument("--b", action="append", default=[], help="NAME=VALUE for server B")
    p.add_argument("--model", default="mlp", help=f"one of {','.join(models.MODELS)}")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=5.0, help="seconds of load per turn")
    p.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds per turn")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--engine", default="auto", choices=("auto", "wrk", "python"))
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    a.env_a, a.env_b = settings(a.a), settings(a.b)
    if a.env_a == a.env_b:
        p.error("A and B have the same settings: give --a and/or --b")
    models.get(a.model)
    return a


def main(argv: List[str] | None = None) -> int:
    a = parse_args(argv)
    spec = models.get(a.model)
    common = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(a.workers), "EIKIT_WORKER_THREADS": "1"}
    configs = [
        runner.Config("A", env=dict(common, **a.env_a)),
        runner.Config("B", env=dict(common, **a.env_b)),
    ]
    plan = runner.Plan(
        body=models.request_body(spec),
        content_type=spec.content_type,
        accept=spec.accept,
        concurrency=[a.concurrency],
        duration=a.duration,
        warmup=a.warmup,
        rounds=a.rounds,
        engine=a.engine,
    )
    with tempfile.TemporaryDirectory(prefix="eikit-ab-") as tmp:
        base = Path(tmp)
        models.save_torchscript(spec, base / "model" / "model.pt")
        result = runner.run(configs, plan, base, lambda text: print(text, file=sys.stderr))
    print("A: %s\nB: %s" % (json.dumps(a.env_a), json.dumps(a.env_b)))
    print(report.table(result))
    if a.out:
        report.write_json(result, a.out, {"model": a.model})
    return 1 if any(point.load["failed"] for point in result.points) else 0


if __name__ == "__main__":
    sys.exit(main())
