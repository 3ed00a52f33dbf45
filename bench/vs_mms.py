#!/usr/bin/env python
"""eikit against AWS's single-model stack, side by side, in one run: issue 15's goals.

    .venv/bin/python -m bench.vs_mms [--rounds 3] [--duration 8] [--warmup 30]
                                     [--concurrency 16] [--resnet-concurrency 16]
                                     [--mms-venv DIR] [--out F.json]

Both servers serve one model with 2 workers and one torch thread each, on 127.0.0.1:
eikit's ``serve`` (bench/models.py's TorchScript file, its defaults otherwise) and AWS's
multi-model-server 1.1.11 + sagemaker-inference 1.10.1 + sagemaker-pytorch-inference's
handler service, started by sagemaker-inference's own ``start_model_server()``
(bench/mms.py; its virtualenv is made on first use, about a minute; Java 8+ needed).

Rounds alternate (eikit MMS, MMS eikit, ...), each server started afresh for each model,
and each warmed up with ``--warmup`` s of the same load (30 by default: MMS's JVM needs
them, see WARMUP_S) before it is measured:

* tiny MLP (JSON row): time from start to the first good prediction, PSS of the whole
  process tree once both workers are ready, then ``--duration`` s of wrk at
  ``--concurrency`` after the warm-up: req/s, p50/p99, the tree's CPU per request;
* ResNet-18 with its 1x3x224x224 float32 input as a ~3.1 MB JSON list: the same at
  ``--resnet-concurrency``.

It prints, per figure, the medians over rounds for eikit and MMS, eikit ÷ MMS, and the
issue's goal where it sets one (met or not); ``--out`` writes every round as JSON. See
bench/README.md ("Against AWS's stack").
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import mms, models  # noqa: E402
from bench import server as srv  # noqa: E402
from bench.mme import metric_value  # noqa: E402
from eikit.bench import load, runner, usage  # noqa: E402
from eikit.bench.served import Served  # noqa: E402

SERVERS = ("eikit", "mms")
# Seconds of load before the measured run, for both servers. MMS's frontend is Java: until
# its JIT has compiled the request path, it spends twice the CPU per request. Measured here
# (tiny MLP, c=16, 12 s of wrk after the warm-up, load average 1.7-2.7): after 3 s MMS gave
# 1,873 req/s at 0.49 ms of JVM CPU per request, after 30 s 2,851 req/s at 0.23 ms; eikit
# gave 8,323 and 8,314 (no JIT: its figure does not move). A short warm-up flatters eikit.
WARMUP_S = 30.0
JSON = "application/json"


@dataclass(frozen=True)
class Goal:
    """One row of the table: a figure of one model, and the issue's goal for eikit ÷ MMS
    (``at_least`` or ``at_most`` that ratio; neither: shown, no goal)."""

    label: str
    model: str
    path: Sequence[str]  # into runner.summary's config row
    spec: str
    at_least: Optional[float] = None
    at_most: Optional[float] = None


def rows(concurrency: int, resnet_concurrency: int) -> List[Goal]:
    c, rc = str(concurrency), str(resnet_concurrency)
    at_c = ("by_concurrency", c)
    at_rc = ("by_concurrency", rc)
    return [
        Goal(f"MLP req/s, c={c}", "mlp", (*at_c, "rps"), ",.0f", at_least=3.0),
        Goal(f"MLP p99 ms, c={c}", "mlp", (*at_c, "p99_ms"), ".2f", at_most=0.4),
        Goal(f"MLP p50 ms, c={c}", "mlp", (*at_c, "p50_ms"), ".2f"),
        Goal(f"MLP server CPU ms/req, c={c}", "mlp", (*at_c, "cpu_ms_per_req"), ".3f"),
        Goal(f"ResNet-18 JSON req/s, c={rc}", "resnet18", (*at_rc, "rps"), ".1f", at_least=1.5),
        Goal(f"ResNet-18 JSON p99 ms, c={rc}", "resnet18", (*at_rc, "p99_ms"), ".0f"),
        Goal(
            f"ResNet-18 JSON server CPU ms/req, c={rc}",
            "resnet18",
            (*at_rc, "cpu_ms_per_req"),
            ".1f",
        ),
        Goal("first OK prediction s (MLP)", "mlp", ("first_ok_s",), ".2f", at_most=0.5),
        Goal("PSS MB, ready, 2 workers (MLP)", "mlp", ("pss_ready_mb",), ".0f", at_most=0.6),
        Goal("first OK prediction s (ResNet-18)", "resnet18", ("first_ok_s",), ".2f"),
        Goal("PSS MB, ready, 2 workers (ResNet-18)", "resnet18", ("pss_ready_mb",), ".0f"),
    ]


def _dig(doc: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    """value ÷ base; None when either is missing, NaN or the base is 0."""
    if value is None or base is None or math.isnan(value) or math.isnan(base) or not base:
        return None
    return value / base


def verdict(goal: Goal, r: Optional[float]) -> str:
    """Against the goal: "met" or "not met"; "" where there is none; "?" without a ratio."""
    if goal.at_least is None and goal.at_most is None:
        return ""
    if r is None:
        return "?"
    if goal.at_least is not None and r < goal.at_least:
        return "not met"
    if goal.at_most is not None and r > goal.at_most:
        return "not met"
    return "met"


def compare(summaries: Dict[str, Dict[str, Any]], goals: List[Goal]) -> List[Dict[str, Any]]:
    """Per row: eikit's and MMS's medians, every round's values, eikit ÷ MMS and the goal.
    ``summaries``: model -> runner.summary() of that model's report."""
    out = []
    for goal in goals:
        configs = (summaries.get(goal.model) or {}).get("configs", {})
        values = {name: _dig(configs.get(name), goal.path) for name in SERVERS}
        tail = list(goal.path[:-1]) + [goal.path[-1] + "_rounds"]
        r = ratio(values["eikit"], values["mms"])
        rounds = {name: _dig(configs.get(name), tail) or [] for name in SERVERS}
        per_round = [ratio(e, m) for e, m in zip(rounds["eikit"], rounds["mms"])]
        if len(rounds["eikit"]) != len(rounds["mms"]):
            per_round = []  # a round failed on one side: no pairs
        out.append(
            {
                "label": goal.label,
                "eikit": values["eikit"],
                "mms": values["mms"],
                "eikit_rounds": rounds["eikit"],
                "mms_rounds": rounds["mms"],
                "ratio": r,
                "ratio_rounds": [x for x in per_round if x is not None],
                "goal": (">= %g" % goal.at_least)
                if goal.at_least is not None
                else ("<= %g" % goal.at_most if goal.at_most is not None else ""),
                "verdict": verdict(goal, r),
                "spec": goal.spec,
            }
        )
    return out


def _cell(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def table(compared: List[Dict[str, Any]]) -> str:
    """A Markdown table: figure, eikit, MMS, eikit ÷ MMS (of the medians, and the range of
    the rounds' own ratios), goal, verdict (judged on the ratio of the medians)."""
    lines = [
        "| figure (median of rounds) | eikit | MMS | eikit ÷ MMS | rounds' ÷ | goal | |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in compared:
        each = row.get("ratio_rounds") or []
        spread = "%.2f–%.2f" % (min(each), max(each)) if len(each) > 1 else "-"
        lines.append(
            "| %s | %s | %s | %s | %s | %s | %s |"
            % (
                row["label"],
                _cell(row["eikit"], row["spec"]),
                _cell(row["mms"], row["spec"]),
                _cell(row["ratio"], ".2f"),
                spread,
                row["goal"],
                row["verdict"],
            )
        )
    return "\n".join(lines)


def summary(report: runner.Report) -> Dict[str, Any]:
    """runner.summary, plus every round's PSS when ready (it keeps only the median)."""
    found = runner.summary(report)
    for name, row in found["configs"].items():
        row["pss_ready_mb_rounds"] = [s.pss_ready_mb for s in report.starts if s.config == name]
    return found


def order(round_no: int) -> List[str]:
    """eikit first in odd rounds, MMS first in even ones."""
    return list(SERVERS) if round_no % 2 else list(reversed(SERVERS))


# ---------------------------------------------------------------------------- measuring


def log(text: str) -> None:
    print("[vs-mms %s] %s" % (time.strftime("%H:%M:%S"), text), file=sys.stderr, flush=True)


def eikit_workers_ready(url: str) -> int:
    code, text = srv.http("GET", url + "/metrics", timeout=5.0)
    value = metric_value(text.decode(), "eikit_workers_ready") if code == 200 else None
    return int(value or 0)


def when_ready(
    server: Served, count: Callable[[str], int], workers: int, timeout: float
) -> Dict[str, Any]:
    """Wait until the server lists ``workers`` workers ready and its tree is idle, then
    its memory: what "ready with 2 workers" holds."""
    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        try:
            ready = count(server.url)
        except OSError:
            ready = 0
        if ready >= workers:
            break
        time.sleep(0.1)  # polling interval; the server's answer decides
    runner.wait_idle(server.pids())
    memory = usage.tree_memory(server.pid)
    memory["workers_ready"] = ready
    memory["commands"] = {str(pid): srv.describe(pid) for pid in server.pids()}
    return memory


class Bench:
    """The run: per model, its TorchScript file, load plan and report (runner's types, so
    runner.summary gives the medians); ``one`` starts, readies, measures and stops one
    server for one model and round."""

    def __init__(self, a: argparse.Namespace, work: Path, venv: Optional[Path]) -> None:
        self.a = a
        self.work = work
        self.venv = venv
        self.models: Dict[str, Path] = {}
        self.plans: Dict[str, runner.Plan] = {}
        self.reports: Dict[str, runner.Report] = {}
        self.errors: List[str] = []
        self.trees: List[Dict[str, Any]] = []  # pid -> command, to read CPU by pid
        names = [n for n in SERVERS if n != "mms" or venv is not None]
        for name, c, body, content_type in self.loads():
            spec = models.get(name)
            self.models[name] = models.save_torchscript(spec, work / "models" / name / "model.pt")
            self.plans[name] = runner.Plan(
                body=body,
                content_type=content_type,
                concurrency=[c],
                duration=a.duration,
                warmup=a.warmup,
                rounds=a.rounds,
                engine=a.engine,
                timeout=120.0,
                ready_timeout=a.ready_timeout,
            )
            configs = [runner.Config(n) for n in reversed(names)]  # its ratios: ÷ MMS
            plan = asdict(self.plans[name])
            plan["body_bytes"] = len(plan.pop("body"))
            self.reports[name] = runner.Report(configs, plan)

    def loads(self) -> List[Any]:
        mlp, resnet = models.get("mlp"), models.get("resnet18")
        found = [("mlp", self.a.concurrency, models.request_body(mlp), mlp.content_type)]
        if self.a.resnet_concurrency > 0:
            found.append(("resnet18", self.a.resnet_concurrency, models.json_body(resnet), JSON))
        return found

    def served(self, kind: str, model: str, round_no: int) -> Served:
        base = self.work / ("%s-%s-r%d" % (kind, model, round_no))
        (base / "model").mkdir(parents=True)
        shutil.copy(self.models[model], base / "model" / "model.pt")
        log_path = base / "server.log"
        if kind == "mms":
            assert self.venv is not None
            return mms.MmsServed(self.venv, base, self.a.workers, log_path)
        env = {
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.a.workers),
            "EIKIT_WORKER_THREADS": "1",
        }
        return Served(base, self.a.serve_cmd.split() if self.a.serve_cmd else None, env, log_path)

    def one(self, kind: str, model: str, round_no: int) -> None:
        plan, report = self.plans[model], self.reports[model]
        server = self.served(kind, model, round_no)
        probe = load.Request.invocation("http://127.0.0.1", plan.body, plan.content_type)
        try:
            first = server.start(probe, plan.ready_timeout)
            count = mms.mms_workers_ready if kind == "mms" else eikit_workers_ready
            memory = when_ready(server, count, self.a.workers, plan.ready_timeout)
            pss = memory["pss_bytes"] / 2**20
            report.starts.append(runner.Start(kind, round_no, first, pss, memory["processes"]))
            self.trees.append(
                {"server": kind, "model": model, "round": round_no, "pids": memory["commands"]}
            )
            log(
                "%s %s round %d: first OK %.2fs; %d/%d workers ready, %d processes, PSS %.0f MB"
                % (
                    kind,
                    model,
                    round_no,
                    first,
                    memory["workers_ready"],
                    self.a.workers,
                    memory["processes"],
                    pss,
                )
            )
            if memory["workers_ready"] < self.a.workers:
                self.errors.append(
                    "%s %s round %d: workers not all ready" % (kind, model, round_no)
                )
            request = load.Request.invocation(server.url, plan.body, plan.content_type)
            point = runner.measure(request, plan.concurrency[0], plan, server, kind, round_no)
            report.points.append(point)
            log(runner.describe(point))
            if point.load["failed"]:
                self.errors.append(
                    "%s %s round %d: %d failed" % (kind, model, round_no, point.load["failed"])
                )
        except (RuntimeError, TimeoutError, OSError) as exc:
            self.errors.append("%s %s round %d: %s" % (kind, model, round_no, exc))
            log("%s %s round %d FAILED: %s" % (kind, model, round_no, exc))
        finally:
            server.stop()

    def run(self) -> None:
        for round_no in range(1, self.a.rounds + 1):
            for kind in order(round_no):
                if kind == "mms" and self.venv is None:
                    continue
                for model in self.plans:
                    self.one(kind, model, round_no)


# ---------------------------------------------------------------------------------- main


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="eikit against AWS's MMS + sagemaker-inference, single model, side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (fresh servers)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of measured load")
    p.add_argument(
        "--warmup",
        type=float,
        default=WARMUP_S,
        help="unrecorded seconds of the same load before it, for both servers (MMS's JVM "
        "needs them: see WARMUP_S)",
    )
    p.add_argument("--concurrency", type=int, default=16, help="clients, tiny MLP")
    p.add_argument(
        "--resnet-concurrency", type=int, default=16, help="clients, ResNet-18 JSON (0: skip)"
    )
    p.add_argument("--workers", type=int, default=2, help="workers per server")
    p.add_argument("--engine", default="auto", choices=("auto", "wrk", "python"))
    p.add_argument("--mms-venv", type=Path, default=mms.DEFAULT_MMS_VENV, help="MMS's virtualenv")
    p.add_argument("--no-mms", action="store_true", help="eikit only (no ratios)")
    p.add_argument("--serve-cmd", default=None, help="eikit's server command (default: venv's)")
    p.add_argument("--ready-timeout", type=float, default=180.0, help="max wait for readiness")
    p.add_argument("--keep", action="store_true", help="keep the work dir (models, logs)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.duration <= 0 or a.warmup < 0 or a.concurrency < 1 or a.workers < 1:
        p.error("need --rounds, --duration, --concurrency, --workers >= 1 and --warmup >= 0")
    if a.resnet_concurrency < 0:
        p.error("--resnet-concurrency must be >= 0")
    return a


def main(argv: Optional[List[str]] = None) -> int:
    a = parse_args(argv)
    import torch

    facts: Dict[str, Any] = {
        "cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "wrk": load.find_wrk(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python -m bench.vs_mms", *(argv if argv is not None else sys.argv[1:])]
        ),
    }
    log("machine: %s" % facts)
    venv: Optional[Path] = None
    if not a.no_mms:
        try:
            facts["mms"] = mms.ensure_mms_venv(a.mms_venv.resolve(), torch.__version__, log)
            venv = a.mms_venv.resolve()
            log("mms: %s; %s" % (facts["mms"]["java_version"], ", ".join(facts["mms"]["packages"])))
        except (RuntimeError, OSError) as exc:
            log("mms: cannot be set up, eikit only: %s" % exc)
            facts["mms_error"] = str(exc)
    work = Path(tempfile.mkdtemp(prefix="eikit-vs-mms-"))
    try:
        bench = Bench(a, work, venv)
        bench.run()
    finally:
        if a.keep:
            log("work dir kept at %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    facts["loadavg_at_end"] = list(os.getloadavg())
    summaries = {name: summary(report) for name, report in bench.reports.items()}
    compared = compare(summaries, rows(a.concurrency, a.resnet_concurrency))
    print()
    print(
        "eikit vs AWS's MMS stack, single model, %d workers x 1 torch thread, %d rounds x %gs, "
        "load average %.1f -> %.1f, %s cores"
        % (
            a.workers,
            a.rounds,
            a.duration,
            facts["loadavg_at_start"][0],
            facts["loadavg_at_end"][0],
            facts["cpus"],
        )
    )
    print(table(compared))
    for error in bench.errors:
        print("ERROR: " + error)
    if a.out:
        doc = {
            "machine": facts,
            "config": {k: str(v) for k, v in vars(a).items()},
            "table": compared,
            "reports": {name: report.as_dict() for name, report in bench.reports.items()},
            "processes": bench.trees,
            "errors": bench.errors,
        }
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        log("wrote %s" % a.out)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
