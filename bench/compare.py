#!/usr/bin/env python
"""The working tree against a git ref, side by side: ``scripts/bench-compare REF``.

    scripts/bench-compare 2c6d22e [--rounds 6] [--duration 10] [--concurrency 16]

Installs REF (any git ref) into a virtualenv of its own, ``bench/.envs/<commit>`` (made
once, then reused): ``git archive`` of REF, ``python -m venv``, then
``pip install REF[pytorch]`` constrained to the versions this environment runs (torch,
uvicorn, httptools, ...), so only eikit's own code differs. The working tree (its tracked
files, uncommitted changes included, through ``git stash create``) is installed the same
way, so that both start alike. Then it serves the tiny MLP
(bench/models.py) with each side's ``serve`` (2 workers, one torch thread each), in
alternating rounds (REF tree, tree REF, ...), each round a fresh server: time to the first
good prediction, warm-up, then ``--duration`` seconds of load at each concurrency
(wrk if installed, else eikit's own load generator). It prints CPU per request of the
server's process tree (frontend + workers, from /proc: the figure that holds best on a
shared machine), req/s, p50/p99 and first-prediction time, the ratio tree ÷ REF of the
medians and of each round. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import models  # noqa: E402
from eikit.bench import load, runner  # noqa: E402

ENVS = REPO / "bench" / ".envs"
SERVER_ENV = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "EIKIT_WORKER_THREADS": "1"}


def say(text: str) -> None:
    print("[bench-compare] " + text, file=sys.stderr, flush=True)


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit("git %s failed: %s" % (" ".join(args), done.stderr.strip()))
    return done.stdout.strip()


def tree_label() -> str:
    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return "working tree (HEAD %s%s)" % (head, ", with uncommitted changes" if dirty else "")


def tree_commit() -> str:
    """A commit holding the working tree's tracked files as they are now (HEAD when clean):
    installed like REF, so both start the same way (an editable install's import hook
    alone made the first prediction ~0.3 s later here)."""
    untracked = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line.startswith("??") and line[3:].startswith(("src/", "handlers/"))
    ]
    if untracked:
        say("not in the tree's environment (untracked): %s" % ", ".join(untracked))
    return git("stash", "create") or git("rev-parse", "HEAD")


def constraints(python: str) -> List[str]:
    """``pip freeze`` of this environment less eikit itself: the versions REF gets too."""
    done = subprocess.run(
        [python, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        line
        for line in done.stdout.splitlines()
        if "==" in line and not line.lower().startswith("eikit==")
    ]


def ref_env(ref: str, envs: Path = ENVS, python: str = sys.executable) -> Path:
    """A virtualenv with REF installed; made once per commit."""
    commit = git("rev-parse", "--verify", ref + "^{commit}")
    venv = envs / commit[:12]
    if (venv / ".eikit-ready").exists():
        return venv
    say("installing %s (%s) into %s ..." % (ref, commit[:12], venv))
    shutil.rmtree(venv, ignore_errors=True)
    envs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="eikit-ref-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        archive = subprocess.Popen(
            ["git", "-C", str(REPO), "archive", commit], stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-x", "-C", str(source)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit("git archive %s failed" % commit)
        pins = Path(tmp) / "constraints.txt"
        pins.write_text("\n".join(constraints(python)) + "\n")
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        target = "%s[pytorch]" % source
        logged = venv / "install.log"
        with open(logged, "w") as sink:
            done = subprocess.run(pip + ["-c", str(pins), target], stdout=sink, stderr=sink)
            if done.returncode != 0:
                say("REF does not install with this environment's versions; unpinned")
                done = subprocess.run(pip + [target], stdout=sink, stderr=sink)
        if done.returncode != 0:
            raise SystemExit("pip install of %s failed; see %s" % (ref, logged))
    (venv / ".eikit-ready").write_text(commit + "\n")
    return venv


def serve_command(venv: Path) -> List[str]:
    return [str(venv / "bin" / "serve")]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench-compare",
        description="The working tree against a git ref, side by side (bench/compare.py).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("ref", help="git ref to compare with (a commit, tag or branch)")
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds per side")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per point")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--concurrency", default="16", help="comma-separated")
    p.add_argument("--model", default="mlp", help="one of %s" % ",".join(models.MODELS))
    p.add_argument("--engine", default="auto", choices=("auto", "wrk", "python"))
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for both servers")
    p.add_argument("--envs", type=Path, default=ENVS, help="where REF environments are kept")
    p.add_argument(
        "--tree-serve",
        help="serve the tree with this command (e.g. .venv/bin/serve, editable: quicker to "
        "set up, slower to start) instead of an environment made like REF's",
    )
    p.add_argument("--out", type=Path, help="write everything as JSON here")
    a = p.parse_args(argv)
    a.concurrency = [int(x) for x in a.concurrency.split(",") if x.strip()]
    if a.rounds < 1 or not a.concurrency or min(a.concurrency) < 1:
        p.error("--rounds and --concurrency must be positive")
    a.extra_env = dict(item.split("=", 1) for item in a.env if "=" in item)
    return a


def _fmt(value: Optional[float], spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


ROWS = (
    ("CPU ms/request (server tree)", "cpu_ms_per_req", ".4f"),
    ("  of which the frontend", "frontend_cpu_ms_per_req", ".4f"),
    ("req/s", "rps", ",.1f"),
    ("p50 ms", "p50_ms", ".2f"),
    ("p99 ms", "p99_ms", ".2f"),
)


def format_report(report: runner.Report, ref_label: str, tree: str) -> str:
    doc = runner.summary(report)
    ref_row, tree_row = (doc["configs"][c.name] for c in report.configs)
    lines = []
    for concurrency in report.plan["concurrency"]:
        key = str(concurrency)
        a, b = ref_row["by_concurrency"][key], tree_row["by_concurrency"][key]
        lines.append("c=%d, medians of %d rounds" % (concurrency, report.plan["rounds"]))
        lines.append("  %-30s %12s %12s %10s" % ("", "REF", "tree", "tree÷REF"))
        for label, metric, spec in ROWS:
            ratio = runner._ratio(b[metric], a[metric])
            lines.append(
                "  %-30s %12s %12s %10s"
                % (label, _fmt(a[metric], spec), _fmt(b[metric], spec), _fmt(ratio, ".3f"))
            )
        per_round = _round_ratios(report, concurrency)
        lines.append(
            "  per-round tree÷REF CPU/request: %s (median %s)"
            % (
                ", ".join(_fmt(r, ".3f") for r in per_round),
                _fmt(statistics.median(per_round) if per_round else None, ".3f"),
            )
        )
        failed = a["failed"] + b["failed"]
        if failed:
            lines.append("  FAILED requests: %d (figures not trustworthy)" % failed)
    first = runner._ratio(tree_row["first_ok_s"], ref_row["first_ok_s"])
    lines.append(
        "  %-30s %12s %12s %10s"
        % (
            "first OK prediction s",
            _fmt(ref_row["first_ok_s"], ".2f"),
            _fmt(tree_row["first_ok_s"], ".2f"),
            _fmt(first, ".3f"),
        )
    )
    lines.append("rounds (in the order run):")
    for round_no in range(1, report.plan["rounds"] + 1):
        cells = []
        names = [c.name for c in report.configs]
        for name in names if round_no % 2 else reversed(names):
            start = [s for s in report.starts if s.config == name and s.round == round_no]
            points = [p for p in report.points if p.config == name and p.round == round_no]
            text = "%s first OK %s s" % (name, _fmt(start[0].first_ok_s if start else None, ".2f"))
            for p in points:
                text += "; c=%d %s req/s, CPU %s ms/req, p99 %s ms%s" % (
                    p.concurrency,
                    _fmt(p.load["rps"], ",.0f"),
                    _fmt(p.cpu_ms_per_req, ".4f"),
                    _fmt(p.load["p99_ms"], ".2f"),
                    " (busy: others %.2f cores)" % p.other_cores
                    if (p.other_cores or 0) > 0.2
                    else "",
                )
            cells.append(text)
        lines.append("  %d: %s" % (round_no, " | ".join(cells)))
    head = "bench-compare: REF = %s, tree = %s" % (ref_label, tree)
    return "\n".join([head] + lines)


def _round_ratios(report: runner.Report, concurrency: int) -> List[float]:
    ref, tree = (c.name for c in report.configs)
    out = []
    for round_no in range(1, report.plan["rounds"] + 1):
        pair = {}
        for p in report.points:
            if p.round == round_no and p.concurrency == concurrency:
                pair[p.config] = p.cpu_ms_per_req
        if pair.get(ref) and pair.get(tree) is not None:
            out.append(pair[tree] / pair[ref])
    return out


def main(argv: Optional[List[str]] = None) -> int:
    a = parse_args(argv)
    if a.engine != "python" and load.find_wrk() is None:
        if a.engine == "wrk":
            raise SystemExit(load.WRK_HINT)
        say("wrk not found: using eikit's Python load generator (more client CPU)")
    venv = ref_env(a.ref, a.envs)
    commit = (venv / ".eikit-ready").read_text().strip()
    ref_label = "%s (%s)" % (a.ref, commit[:12])
    env = dict(SERVER_ENV)
    env.update(a.extra_env)
    spec = models.get(a.model)
    tree_serve = [a.tree_serve] if a.tree_serve else serve_command(ref_env(tree_commit(), a.envs))
    configs = [
        runner.Config("REF", command=serve_command(venv), env=env),
        runner.Config("tree", command=tree_serve, env=env),
    ]
    plan = runner.Plan(
        body=models.request_body(spec),
        content_type=spec.content_type,
        accept=spec.accept,
        concurrency=a.concurrency,
        duration=a.duration,
        warmup=a.warmup,
        rounds=a.rounds,
        engine=a.engine,
    )
    with tempfile.TemporaryDirectory(prefix="eikit-compare-") as tmp:
        base = Path(tmp)
        models.save_torchscript(spec, base / "model" / "model.pt")
        report = runner.run(configs, plan, base, progress=say)
    tree = tree_label()
    print(format_report(report, ref_label, tree))
    if a.out:
        doc: Dict[str, Any] = report.as_dict()
        doc.update(ref=a.ref, ref_commit=commit, tree=tree, model=a.model, cores=os.cpu_count())
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        say("wrote %s" % a.out)
    failed = sum(p.load["failed"] for p in report.points)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
