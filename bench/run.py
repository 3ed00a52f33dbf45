#!/usr/bin/env python
"""eikit benchmark: POST /invocations through the server vs. the same model in-process.

    .venv/bin/python bench/run.py [--duration 10] [--models mlp,resnet18]
                                  [--concurrency 1,4,16] [--workers 2] [--out FILE.json]

For each model: build it from code (TorchScript, random weights), run the in-process
baseline (decode + forward + encode in ``--workers`` processes, one torch thread each),
then start ``serve`` on 127.0.0.1 with ``--workers`` workers and one torch thread per worker,
check one prediction against the in-process one, and drive it with wrk (a separate
process) at each concurrency. Prints a table; ``--out`` writes everything as JSON.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import inprocess, models  # noqa: E402
from bench import server as srv  # noqa: E402
from eikit.bench import load  # noqa: E402

# Targets and reference points from DESIGN.md ("Where the time goes"), same 2-core machines.
TARGETS = {
    "mlp": {"min_rps_c16": 6800.0, "mms_rps_c16": 3400.0},
    "resnet18": {"min_ratio": 0.98, "mms_rps": 41.5},
}

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def int_list(text: str) -> List[int]:
    vals = [int(x) for x in text.split(",") if x.strip()]
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark eikit's POST /invocations against the in-process model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured point")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unrecorded load first")
    p.add_argument("--models", default="mlp,resnet18", help=f"any of {','.join(models.MODELS)}")
    p.add_argument("--concurrency", type=int_list, default=[1, 4, 16], help="wrk connections")
    p.add_argument("--workers", type=int, default=2, help="server workers = in-process procs")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker/process")
    p.add_argument("--wrk", default="wrk", help="wrk executable")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (<= concurrency)")
    p.add_argument("--serve-cmd", default=None, help="server command (default: venv's serve)")
    p.add_argument(
        "--mxnet-python",
        default=str(REPO / ".nox" / "mxnet" / "bin" / "python"),
        help="interpreter with mxnet and eikit (nox -s mxnet) for mxnet-* models",
    )
    p.add_argument("--ready-timeout", type=float, default=120.0, help="max wait for /ping 200")
    p.add_argument("--no-inprocess", action="store_true", help="skip the in-process baseline")
    p.add_argument("--no-server", action="store_true", help="skip the server (baseline only)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat everything N times, alternating in-process and server; report medians",
    )
    p.add_argument(
        "--retries", type=int, default=2, help="restarts per point if the server exits by itself"
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir (models, logs)")
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    a = p.parse_args(argv)
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in a.models:
        models.get(m)  # raises with the list of valid names
    if a.duration < 1:
        p.error("--duration must be >= 1 s (wrk's resolution)")
    return a


# --------------------------------------------------------------------------- machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        p = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return p.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine_facts(wrk: str | None) -> Dict[str, Any]:
    import numpy
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "wrk": load.wrk_version(wrk) if wrk else None,
        "eikit_commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def rss_mb(pids: List[int]) -> float | None:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1) if total else None


# ---------------------------------------------------------------------------------- report


def _fmt(x: float | None, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


# (header, width, source, key, format): source "s" = server point, "i" = in-process, "r" = row
_COLUMNS = [
    ("server req/s", 12, "s", "rps", ",.1f"),
    ("in-proc req/s", 13, "i", "rps", ",.1f"),
    ("ratio", 6, "r", "ratio", ".3f"),
    ("p50 ms", 8, "s", "p50_ms", ".2f"),
    ("p99 ms", 8, "s", "p99_ms", ".2f"),
    ("in-proc p50", 11, "i", "p50_ms", ".3f"),
    ("srv CPU ms/req", 14, "s", "server_cpu_ms_per_req", ".3f"),
    ("in-proc CPU", 11, "i", "cpu_ms_per_req", ".3f"),
    ("other cores", 11, "s", "other_cores", ".2f"),
]


def format_table(rows: List[Dict[str, Any]]) -> str:
    """One line per (model, concurrency): server vs. in-process req/s, ratio, latency, CPU."""
    head = f"{'model':<9} {'conc':>4} " + " ".join(f"{h:>{w}}" for h, w, *_ in _COLUMNS)
    head += f" {'errors':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        src = {"s": r.get("server") or {}, "i": r.get("inprocess") or {}, "r": r}
        errs = src["s"].get("failed", 0) if src["s"] else None
        cells = " ".join(f"{_fmt(src[k].get(key), f):>{w}}" for _h, w, k, key, f in _COLUMNS)
        note = f"  {r['error']}" if r.get("error") else ""
        err_cell = "-" if errs is None else str(errs)
        lines.append(f"{r['model']:<9} {r['concurrency']:>4} {cells} {err_cell:>6}{note}")
    return "\n".join(lines)


def target_lines(rows: List[Dict[str, Any]]) -> List[str]:
    """Compare with the DESIGN.md targets where the run has the needed points."""
    out = []
    for r in rows:
        s = r.get("server") or {}
        if not s.get("rps"):
            continue
        if r["model"] == "mlp" and r["concurrency"] == 16:
            t = TARGETS["mlp"]
            ok = s["rps"] >= t["min_rps_c16"]
            out.append(
                f"mlp c=16: {s['rps']:,.0f} req/s, target >= {t['min_rps_c16']:,.0f} "
                f"(MMS ~{t['mms_rps_c16']:,.0f}): {'MET' if ok else 'NOT MET'}"
            )
        # At c=1 only one worker is busy, so the ratio is capped at 1/workers: not a target.
        if r["model"] == "resnet18" and r.get("ratio") and r["concurrency"] > 1:
            t = TARGETS["resnet18"]
            ok = r["ratio"] >= t["min_ratio"]
            out.append(
                f"resnet18 c={r['concurrency']}: {r['ratio']:.3f} of in-process, target >= "
                f"{t['min_ratio']:.2f} (MMS ~{t['mms_rps']} req/s): {'MET' if ok else 'NOT MET'}"
            )
    return out


# ---------------------------------------------------------------------------------- checks


def check_prediction(got: bytes, want: bytes, spec: models.ModelSpec) -> str:
    """'ok' or what differs between the server's answer and the in-process one."""
    import numpy as np

    try:
        g = np.asarray(json.loads(got), dtype=np.float64)
    except ValueError as e:
        return f"server answer is not JSON: {e}"
    w = np.asarray(json.loads(want), dtype=np.float64)
    if g.shape != tuple(spec.output_shape):
        return f"shape {g.shape}, expected {spec.output_shape}"
    scale = max(1.0, float(np.abs(w).max()))
    diff = float(np.abs(g - w).max())
    return "ok" if diff <= 1e-4 * scale else f"values differ (max abs diff {diff:.3g})"


def machine_cpu() -> Dict[str, float]:
    """Machine-wide CPU seconds so far from /proc/stat: busy (excl. softirq), softirq, total."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return {}
    v = [int(x) / srv._TICK for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    return {"busy": v[0] + v[1] + v[2] + v[5], "softirq": v[6], "steal": v[7], "total": sum(v)}


def other_load(before: Dict[str, float], after: Dict[str, float], ours_s: float) -> Dict[str, Any]:
    """Cores used during a point by everything except the processes we measured.

    ``ours_s`` is the CPU seconds of the processes under test (server + wrk, or the in-process
    loops). Network softirq (loopback) and hypervisor steal are reported apart: on a busy
    shared machine ``other_cores`` > ~0.2 means the numbers are noisy.
    """
    if not before or not after:
        return {}
    wall = (after["total"] - before["total"]) / max(1, os.cpu_count() or 1)
    if wall <= 0:
        return {}
    return {
        "other_cores": round(max(0.0, after["busy"] - before["busy"] - ours_s) / wall, 2),
        "softirq_cores": round((after["softirq"] - before["softirq"]) / wall, 2),
        "steal_cores": round((after["steal"] - before["steal"]) / wall, 2),
    }


def _warn_noise(res: Dict[str, Any]) -> None:
    other = res.get("other_cores")
    if other is not None:
        log(
            f"  machine during this point: other processes {other:.2f} cores, "
            f"softirq {res.get('softirq_cores', 0):.2f}, steal {res.get('steal_cores', 0):.2f}"
            + ("  <- BUSY MACHINE, numbers are noisy" if other > 0.2 else "")
        )


def cpu_accounting(
    pids: List[int],
    before: Dict[int, Any],
    after: Dict[int, Any],
    wrk_before: Any,
    wrk_after: Any,
    requests: int,
) -> Dict[str, Any]:
    """CPU milliseconds per request spent by each server process and by wrk during a point.

    ``before``/``after`` map pid -> (user s, system s) or None (process gone).
    """
    by_pid = {}
    for p in pids:
        b, e = before.get(p), after.get(p)
        if b is not None and e is not None:
            user, system = e[0] - b[0], e[1] - b[1]
            by_pid[p] = {
                "cmd": srv.describe(p),
                "cpu_s": round(user + system, 3),
                "user_s": round(user, 3),
                "sys_s": round(system, 3),
            }
    total = sum(v["cpu_s"] for v in by_pid.values())
    sys_total = sum(v["sys_s"] for v in by_pid.values())
    wrk_s = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    per = (lambda sec: sec * 1e3 / requests) if requests else (lambda sec: None)
    split = ", ".join(f"pid {p}: {_fmt(per(v['cpu_s']), '.3f')}" for p, v in sorted(by_pid.items()))
    return {
        "server_cpu_s": round(total, 3),
        "server_cpu_ms_per_req": per(total),
        "server_sys_share": round(sys_total / total, 3) if total else None,
        "server_cpu_by_pid": by_pid,
        "server_cpu_split": split,
        "wrk_cpu_s": round(wrk_s, 3),
        "wrk_cpu_ms_per_req": per(wrk_s),
    }


# ------------------------------------------------------------------------------- one model

MXNET_BENCH = Path(__file__).resolve().parent / "mxnet_bench.py"


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def bench_model(
    spec: models.ModelSpec, a: argparse.Namespace, work: Path, wrk: str | None
) -> Dict[str, Any]:
    base = work / spec.name
    body = models.request_body(spec)
    body_path = base / "request.bin"
    mxnet = spec.framework == "mxnet"
    if mxnet:  # built, run in-process and served by the mxnet environment
        model_path = base / "model"
        subprocess.run([a.mxnet_python, str(MXNET_BENCH), "save", str(model_path)], check=True)
    else:
        model_path = models.save_torchscript(spec, base / "model" / "model.pt")
    body_path.write_bytes(body)
    request = load.Request(
        "", body, "POST", {"Content-Type": spec.content_type, "Accept": spec.accept}
    )
    log(
        f"{spec.name}: {spec.description}; model {_size_mb(model_path):.2f} MB, "
        f"request {len(body):,} bytes"
    )
    result: Dict[str, Any] = {
        "model": spec.name,
        "description": spec.description,
        "content_type": spec.content_type,
        "request_bytes": len(body),
        "inprocess": None,
        "server": None,
        "points": [],
    }

    if not a.no_inprocess:
        log(f"{spec.name}: in-process, {a.workers} processes x {a.duration:g}s ...")
        ip = inprocess.run_parallel(
            model_path,
            body_path,
            spec.content_type,
            a.duration,
            a.workers,
            warmup=a.warmup,
            threads=a.threads,
            machine_snapshot=machine_cpu,
            python=a.mxnet_python if mxnet else None,
            framework=spec.framework,
        )
        ip.update(
            other_load(ip.pop("machine_before", {}), ip.pop("machine_after", {}), ip["cpu_s"])
        )
        result["inprocess"] = ip
        log(
            f"{spec.name}: in-process {ip['rps']:,.1f} req/s "
            f"(p50 {ip['p50_ms']:.3f} ms, p99 {ip['p99_ms']:.3f} ms, "
            f"CPU {ip['cpu_ms_per_req']:.3f} ms/req)"
        )
        _warn_noise(ip)

    if a.no_server:
        return result

    # Reference answer for the correctness check, computed here the in-process way.
    if mxnet:
        answer = [a.mxnet_python, str(MXNET_BENCH), "answer", str(model_path), str(body_path)]
        want = subprocess.run(answer + [spec.content_type], check=True, capture_output=True).stdout
    else:
        handler = inprocess.make_handler(inprocess.load_model(str(model_path)), spec.content_type)
        want = handler(body)
    s = srv.Server(
        base,
        workers=a.workers,
        threads=a.threads,
        serve_cmd=str(Path(a.mxnet_python).parent / "serve") if mxnet else a.serve_cmd,
        log_path=base / "server.log",
        ready_timeout=a.ready_timeout,
        extra_env={"EIKIT_FRAMEWORK": "mxnet"} if mxnet else None,
    )
    info: Dict[str, Any] = {"log": str(base / "server.log")}
    result["server"] = info
    try:
        log(f"{spec.name}: starting server ({a.workers} workers, {a.threads} thread each) ...")
        t0 = time.monotonic()
        try:
            s.start()
        except RuntimeError as e:
            # Exited before ready. A stray SIGTERM (shared machine) ends it with 0 or -15:
            # try once more; anything else is a real failure.
            if s.proc is None or s.proc.returncode not in (0, -15, 143):
                raise
            info.setdefault("restarts", []).append({"concurrency": None, "error": str(e)})
            log(f"{spec.name}: server exited ({s.proc.returncode}) before ready; one more try")
            s.stop()
            t0 = time.monotonic()
            s.start()
        url = s.url + "/invocations"
        info["ready_s"] = round(s.startup_s, 3)
        headers = {"Content-Type": spec.content_type, "Accept": spec.accept}
        code, got = srv.http("POST", url, body, headers, timeout=60)
        info["first_prediction_s"] = round(time.monotonic() - t0, 3)
        info["pids"] = s.pids()
        check = f"HTTP {code}: {got[:200]!r}" if code != 200 else check_prediction(got, want, spec)
        info["check"] = check
        log(
            f"{spec.name}: ready in {s.startup_s:.2f}s at {s.url}, pids {info['pids']}; "
            f"first prediction {check}"
        )
        if code != 200:
            raise RuntimeError(f"first prediction failed: {check}")
        for c in a.concurrency:
            attempt = 0
            while True:
                try:
                    res = measure_point(s, spec, wrk, request, c, a)
                    break
                except Exception as e:
                    if attempt >= a.retries or not s.gone(grace=10):
                        raise
                    # Something outside the bench stopped the server (seen on shared
                    # machines: another session's `pkill -f .../serve`). Say so, restart it,
                    # repeat the point.
                    attempt += 1
                    code = s.proc.returncode
                    info.setdefault("restarts", []).append(
                        {"concurrency": c, "exit_code": code, "error": str(e), "log": s.log_tail(8)}
                    )
                    log(
                        f"{spec.name}: the server exited on its own (code {code}) at c={c}; "
                        f"restarting it and repeating the point (retry {attempt}/{a.retries})"
                    )
                    s.stop()
                    s.start()
            result["points"].append(res)
        info["rss_mb_after"] = rss_mb(s.pids())
    except Exception as e:  # keep going with the next model; the table says what failed
        info["error"] = f"{type(e).__name__}: {e}"
        log(f"{spec.name}: server run failed: {info['error']}")
        if s.proc is not None and s.proc.poll() is not None:
            log(f"{spec.name}: the server had exited on its own (code {s.proc.returncode})")
    finally:
        rc = s.stop()
        info["exit_code"] = rc
        if info.get("error"):
            info["log_tail"] = s.log_tail(40)
            log(f"{spec.name}: server log (last lines):\n{info['log_tail']}")
        if s.proc is not None:
            log(f"{spec.name}: server stopped (exit code {rc})")
    return result


def measure_point(
    s: srv.Server,
    spec: models.ModelSpec,
    wrk: str,
    request: load.Request,
    c: int,
    a: argparse.Namespace,
) -> Dict[str, Any]:
    """Warm up, then one measured wrk run at concurrency ``c`` with CPU and noise accounting."""
    request = load.Request(s.url + "/invocations", request.body, "POST", request.headers)

    def run_wrk(duration: float) -> Dict[str, Any]:
        result = load.run(request, c, duration, engine="wrk", wrk=wrk, wrk_threads=a.wrk_threads)
        return result.as_dict()

    if a.warmup > 0:
        run_wrk(a.warmup)
    pids = s.pids()
    # Let the server finish what the warm-up left queued (its clients are gone).
    drain_s = srv.wait_idle(pids)
    log(f"{spec.name}: c={c}, {a.duration:g}s of wrk (server idle after {drain_s:.2f}s) ...")
    load_before = list(os.getloadavg())
    cpu0 = {p: srv.cpu_times(p) for p in pids}
    wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m0 = machine_cpu()
    res = run_wrk(a.duration)
    m1 = machine_cpu()
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = {p: srv.cpu_times(p) for p in pids}
    if s.gone(grace=5 if res["failed"] else 0):
        raise RuntimeError(f"server exited during the point (code {s.proc.returncode})")
    res.update(cpu_accounting(pids, cpu0, cpu1, wrk0, wrk1, res["requests"]))
    res.update(other_load(m0, m1, res["server_cpu_s"] + res["wrk_cpu_s"]))
    res["drain_s"] = round(drain_s, 3)
    res["loadavg_before"] = load_before
    res["loadavg_after"] = list(os.getloadavg())
    errs = res["failed"]
    log(
        f"{spec.name}: c={c}: {res['rps']:,.1f} req/s, p50 {res['p50_ms']:.2f} ms, "
        f"p99 {res['p99_ms']:.2f} ms, server CPU "
        f"{_fmt(res['server_cpu_ms_per_req'], '.3f')} ms/req "
        f"({res['server_cpu_split']}; {_fmt(res['server_sys_share'], '.0%')} in kernel), "
        f"wrk CPU {_fmt(res['wrk_cpu_ms_per_req'], '.3f')} ms/req"
        + (f", {errs} FAILED ({res['non_2xx']} non-2xx, socket {res['errors']})" if errs else "")
    )
    _warn_noise(res)
    return res


def _median_item(items: List[Dict[str, Any]]) -> Dict[str, Any] | None:
    """The item with the median ``rps`` (the lower one for an even count), whole, so its
    latencies and CPU figures stay consistent with its rate."""
    items = sorted((i for i in items if i and i.get("rps")), key=lambda i: i["rps"])
    return items[(len(items) - 1) // 2] if items else None


def rows_of(results: List[Dict[str, Any]], concurrency: List[int]) -> List[Dict[str, Any]]:
    """Table rows: one per (model, concurrency), the median over rounds when there are several."""
    by_model: Dict[str, List[Dict[str, Any]]] = {}
    for res in results:
        by_model.setdefault(res["model"], []).append(res)
    rows = []
    for model, runs in by_model.items():
        ips = [r.get("inprocess") for r in runs if r.get("inprocess")]
        ip = _median_item(ips)
        for c in concurrency:
            pts = [p for r in runs for p in r.get("points", []) if p["concurrency"] == c]
            pt = _median_item(pts)
            row: Dict[str, Any] = {"model": model, "concurrency": c, "server": pt, "inprocess": ip}
            row["ratio"] = pt["rps"] / ip["rps"] if pt and ip and ip.get("rps") else None
            if len(runs) > 1:
                row["rounds"] = {
                    "server_rps": [round(p["rps"], 1) for p in pts],
                    "inprocess_rps": [round(i["rps"], 1) for i in ips],
                }
            if pt is None and any((r.get("server") or {}).get("error") for r in runs):
                row["error"] = "server failed (see JSON/log)"
            elif pt and pt.get("failed"):
                row["error"] = "HTTP/socket errors: req/s not trustworthy"
            rows.append(row)
    return rows


def main(argv: List[str] | None = None) -> int:
    a = parse_args(argv)
    wrk = None
    if not a.no_server:
        wrk = load.find_wrk(a.wrk)
        if wrk is None:
            print(load.WRK_HINT, file=sys.stderr)
            return 2
    facts = machine_facts(wrk)
    log(
        f"machine: {facts['cpus_usable']} usable cores ({facts['cpu_model']}), "
        f"python {facts['python']}, torch {facts['torch']}, {facts['wrk'] or 'no wrk'}, "
        f"load avg {facts['loadavg_at_start']}"
    )
    config = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k not in ("out",)
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="eikit-bench-") as tmp:
        work = Path(tmp)
        if a.keep:
            work = Path(tempfile.mkdtemp(prefix="eikit-bench-keep-"))
            log(f"work dir kept at {work}")
        for round_no in range(1, a.rounds + 1):
            if a.rounds > 1:
                log(f"round {round_no}/{a.rounds}")
            for name in a.models:
                res = bench_model(models.get(name), a, work, wrk)
                res["round"] = round_no
                results.append(res)
    rows = rows_of(results, a.concurrency)
    table = format_table(rows)
    print()
    print(
        f"eikit bench: {a.workers} workers x {a.threads} torch thread; wrk -t{a.wrk_threads} "
        f"on 127.0.0.1; {a.duration:g}s per point; in-process = {a.workers} processes"
    )
    print(
        f"machine: {facts['cpus_usable']} cores, {facts['cpu_model']}, python "
        f"{facts['python']}, torch {facts['torch']}"
    )
    print(table)
    if a.rounds > 1:
        print(f"median of {a.rounds} rounds (in-process and server alternate); per round:")
        for r in rows:
            rd = r.get("rounds") or {}
            print(
                f"  {r['model']} c={r['concurrency']}: server {rd.get('server_rps')}, "
                f"in-process {rd.get('inprocess_rps')}"
            )
    for res in results:
        srv_info = res.get("server") or {}
        if srv_info.get("ready_s") is not None:
            print(
                f"{res['model']}: /ping ready {srv_info['ready_s']:.2f}s, first prediction "
                f"{srv_info.get('first_prediction_s', float('nan')):.2f}s after start, check "
                f"{srv_info.get('check')}, RSS after load {srv_info.get('rss_mb_after')} MB"
            )
    for line in target_lines(rows):
        print(line)
    noisy = [
        f"{r['model']} c={r['concurrency']}"
        for r in rows
        if ((r.get("server") or {}).get("other_cores") or 0) > 0.2
    ]
    noisy += [
        f"{r['model']} in-process"
        for r in results
        if ((r.get("inprocess") or {}).get("other_cores") or 0) > 0.2
    ]
    if noisy:
        print(f"NOISY (other processes used > 0.2 cores): {', '.join(noisy)}; rerun to confirm")
    restarted = [r["model"] for r in results if (r.get("server") or {}).get("restarts")]
    if restarted:
        print(f"server exited on its own and was restarted during: {', '.join(restarted)}")
    if a.out:
        doc = {"machine": facts, "config": config, "models": results, "table": rows}
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        log(f"wrote {a.out}")
    failed = any((r.get("server") or {}).get("error") for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
