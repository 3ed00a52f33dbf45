#!/usr/bin/env python
"""Two server settings side by side: the cost of a feature, as a ratio from one run.

    .venv/bin/python bench/ab.py --b EIKIT_METRICS=false [--model mlp] [--rounds 5]
                                 [--duration 5] [--concurrency 16] [--workers 2]

Starts two ``serve`` processes on the same model (built from code, as in bench/run.py):
A with the default settings plus ``--a K=V``, B with ``--b K=V``. Then, ``--rounds`` times,
loads A and B in turn with wrk for ``--duration`` seconds at ``--concurrency`` (only one of
them is loaded at a time; the idle one costs nothing), and reports the median requests/s
and server CPU per request of each, and A ÷ B. Alternating rounds cancel most of a shared
machine's drift; the spread across rounds is printed so a noisy run can be seen as one.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import load, models  # noqa: E402
from bench import server as srv  # noqa: E402
from bench.run import cpu_accounting, log  # noqa: E402


def settings(items: List[str]) -> Dict[str, str]:
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
    p.add_argument("--duration", type=float, default=5.0, help="seconds of wrk per turn")
    p.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds per server")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    a.env_a, a.env_b = settings(a.a), settings(a.b)
    if a.env_a == a.env_b:
        p.error("A and B have the same settings: give --a and/or --b")
    models.get(a.model)
    return a


def turn(server: srv.Server, wrk: str, script: Path, a: argparse.Namespace) -> Dict[str, Any]:
    pids = server.pids()
    srv.wait_idle(pids)
    cpu0 = {p: srv.cpu_times(p) for p in pids}
    wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = load.run_wrk(wrk, server.url + "/invocations", script, a.concurrency, a.duration)
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = {p: srv.cpu_times(p) for p in pids}
    res.update(cpu_accounting(pids, cpu0, cpu1, wrk0, wrk1, res["requests"]))
    if load.total_errors(res):
        raise RuntimeError("errors during the run: %s" % res["errors"])
    return res


def main(argv: List[str] | None = None) -> int:
    a = parse_args(argv)
    wrk = load.find_wrk(a.wrk)
    spec = models.get(a.model)
    with tempfile.TemporaryDirectory(prefix="eikit-ab-") as tmp:
        base = Path(tmp)
        models.save_torchscript(spec, base / "model" / "model.pt")
        body_path = base / "request.bin"
        body_path.write_bytes(models.request_body(spec))
        script = base / "wrk.lua"
        script.write_text(load.lua_script(body_path, spec.content_type, spec.accept))
        servers = {
            name: srv.Server(
                base,
                workers=a.workers,
                log_path=base / ("server-%s.log" % name),
                extra_env=env,
            )
            for name, env in (("A", a.env_a), ("B", a.env_b))
        }
        runs: Dict[str, List[Dict[str, Any]]] = {"A": [], "B": []}
        try:
            for server in servers.values():
                server.start()
                load.run_wrk(wrk, server.url + "/invocations", script, a.concurrency, a.warmup)
            for index in range(a.rounds):
                order = ("A", "B") if index % 2 == 0 else ("B", "A")
                for name in order:
                    res = turn(servers[name], wrk, script, a)
                    runs[name].append(res)
                    log(
                        "round %d %s: %.1f req/s, server CPU %.3f ms/req"
                        % (index + 1, name, res["rps"], res["server_cpu_ms_per_req"])
                    )
        finally:
            for server in servers.values():
                server.stop()
    summary = {}
    for name in ("A", "B"):
        rates = [res["rps"] for res in runs[name]]
        cpu = [res["server_cpu_ms_per_req"] for res in runs[name]]
        summary[name] = {
            "settings": a.env_a if name == "A" else a.env_b,
            "rps_median": statistics.median(rates),
            "rps_min": min(rates),
            "rps_max": max(rates),
            "cpu_ms_per_req_median": statistics.median(cpu),
        }
    ratio = summary["A"]["rps_median"] / summary["B"]["rps_median"]
    cpu_ratio = summary["A"]["cpu_ms_per_req_median"] / summary["B"]["cpu_ms_per_req_median"]
    for name in ("A", "B"):
        row = summary[name]
        print(
            "%s %-32s %9.1f req/s (rounds %.1f-%.1f)  %.4f ms CPU/req"
            % (
                name,
                json.dumps(row["settings"]),
                row["rps_median"],
                row["rps_min"],
                row["rps_max"],
                row["cpu_ms_per_req_median"],
            )
        )
    print("A / B: %.3f of the requests/s, %.3f of the CPU per request" % (ratio, cpu_ratio))
    if a.out:
        a.out.write_text(
            json.dumps(
                {"model": a.model, "concurrency": a.concurrency, "runs": runs, "summary": summary},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
