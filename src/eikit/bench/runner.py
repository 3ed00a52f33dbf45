"""Sweeps and side-by-side rounds.

A ``Config`` is one way to serve the model: a ``serve`` command and settings, or a running
endpoint's URL. ``run`` measures every config at every concurrency, ``rounds`` times; with
two configs the rounds alternate their order (A B, B A, ...) so that a shared machine's
drift falls on both alike. A started server is started afresh each round, which also
measures its time to the first good prediction and its memory when ready.
"""

from __future__ import annotations

import logging
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from eikit.bench import load, usage
from eikit.bench.served import Served

log = logging.getLogger(__name__)

IDLE_SHARE = 0.2  # of a core: below this the server has finished what a warm-up left queued


@dataclass
class Config:
    name: str
    url: Optional[str] = None  # a running endpoint; else started with command and env
    command: Optional[List[str]] = None  # None: this environment's serve
    env: Dict[str, str] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        return self.url is None


@dataclass
class Plan:
    """What to measure: ``body`` posted to ``/invocations`` at each concurrency."""

    body: bytes
    content_type: str
    accept: str = "application/json"
    concurrency: Sequence[int] = (1, 4, 16)
    duration: float = 10.0
    warmup: float = 2.0
    rounds: int = 1
    engine: str = "auto"
    wrk: Optional[str] = None
    timeout: float = 60.0
    ready_timeout: float = 300.0


@dataclass
class Point:
    config: str
    round: int
    concurrency: int
    load: Dict[str, Any]
    cpu_ms_per_req: Optional[float] = None  # the server's process tree, frontend + workers
    frontend_cpu_ms_per_req: Optional[float] = None  # the tree's root process alone
    cpu_user_share: Optional[float] = None
    cpu_by_pid_ms_per_req: Dict[str, float] = field(default_factory=dict)
    other_cores: Optional[float] = None  # what the rest of the machine used meanwhile
    pss_mb: Optional[float] = None  # the tree's memory after the point


@dataclass
class Start:
    config: str
    round: int
    first_ok_s: float
    pss_ready_mb: float
    processes: int


@dataclass
class Report:
    configs: List[Config]
    plan: Dict[str, Any]
    points: List[Point] = field(default_factory=list)
    starts: List[Start] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "configs": [asdict(config) for config in self.configs],
            "plan": self.plan,
            "points": [asdict(point) for point in self.points],
            "starts": [asdict(start) for start in self.starts],
            "summary": summary(self),
        }


def wait_idle(pids: List[int], timeout: float = 30.0, interval: float = 0.1) -> float:
    """Wait until ``pids`` together use under IDLE_SHARE of a core; seconds waited. After a
    load run the server may still work through requests its gone clients left queued."""
    began = time.monotonic()
    before = usage.sample(pids)
    while time.monotonic() - began < timeout:
        time.sleep(interval)  # a sampling interval, not a guess at readiness
        now = usage.sample(pids)
        if usage.cpu_used(before, now).total_s < IDLE_SHARE * interval:
            break
        before = now
    return time.monotonic() - began


def measure(
    request: load.Request,
    concurrency: int,
    plan: Plan,
    server: Optional[Served],
    config: str = "",
    round_no: int = 1,
) -> Point:
    """Warm up, wait for the server to idle, then one measured run with its CPU."""
    if plan.warmup > 0:
        load.run(
            request,
            concurrency,
            plan.warmup,
            engine=plan.engine,
            wrk=plan.wrk,
            timeout=plan.timeout,
        )
    pids = server.pids() if server is not None else []
    if pids:
        wait_idle(pids)
    before = usage.sample(pids)
    machine0 = usage.machine_busy()
    result = load.run(
        request, concurrency, plan.duration, engine=plan.engine, wrk=plan.wrk, timeout=plan.timeout
    )
    machine1 = usage.machine_busy()
    point = Point(config, round_no, concurrency, result.as_dict())
    if server is None:
        return point
    used = usage.cpu_used(before, usage.sample(server.pids()))
    # The client's CPU is not the server's: wrk or this process, both outside the tree.
    point.other_cores = round(usage.other_cores(machine0, machine1, used.total_s), 3)
    if result.requests:
        per = 1e3 / result.requests
        point.cpu_ms_per_req = used.total_s * per
        point.frontend_cpu_ms_per_req = used.by_pid.get(server.pid, 0.0) * per
        point.cpu_user_share = used.user_s / used.total_s if used.total_s else None
        point.cpu_by_pid_ms_per_req = {
            str(pid): round(seconds * per, 4) for pid, seconds in sorted(used.by_pid.items())
        }
    point.pss_mb = usage.tree_memory(server.pid)["pss_bytes"] / 2**20
    return point


Progress = Callable[[str], None]


def run(
    configs: List[Config],
    plan: Plan,
    base_dir: Optional[Path] = None,
    progress: Optional[Progress] = None,
) -> Report:
    """Measure every config at every concurrency, ``plan.rounds`` times, alternating."""
    say = progress or (lambda text: log.info("%s", text))
    report = Report(configs, _plan_dict(plan))
    with tempfile.TemporaryDirectory(prefix="eikit-bench-") as work:
        for round_no in range(1, plan.rounds + 1):
            order = configs if round_no % 2 else list(reversed(configs))
            for config in order:
                _one(config, round_no, plan, base_dir, Path(work), report, say)
    return report


def _one(
    config: Config,
    round_no: int,
    plan: Plan,
    base_dir: Optional[Path],
    work: Path,
    report: Report,
    say: Progress,
) -> None:
    server: Optional[Served] = None
    endpoint = config.url
    if config.started:
        assert base_dir is not None, "a started config needs the model's base dir"
        server = Served(base_dir, config.command, config.env, work / ("%s.log" % config.name))
    try:
        if server is not None:
            probe = load.Request.invocation("http://127.0.0.1", plan.body, plan.content_type)
            first = server.start(
                _with_accept(probe, plan.accept),
                plan.ready_timeout,
            )
            memory = usage.tree_memory(server.pid)
            report.starts.append(
                Start(
                    config.name,
                    round_no,
                    first,
                    memory["pss_bytes"] / 2**20,
                    memory["processes"],
                )
            )
            say(
                "%s round %d: first good prediction %.2fs after start, %d processes, PSS %.0f MB"
                % (config.name, round_no, first, memory["processes"], memory["pss_bytes"] / 2**20)
            )
            endpoint = server.url
        assert endpoint is not None
        request = _with_accept(
            load.Request.invocation(endpoint, plan.body, plan.content_type), plan.accept
        )
        for concurrency in plan.concurrency:
            point = measure(request, concurrency, plan, server, config.name, round_no)
            report.points.append(point)
            say(describe(point))
    finally:
        if server is not None:
            server.stop()


def _with_accept(request: load.Request, accept: str) -> load.Request:
    headers = dict(request.headers)
    headers["Accept"] = accept
    return load.Request(request.url, request.body, request.method, headers)


def describe(point: Point) -> str:
    result = point.load
    text = "%s round %d c=%d: %.1f req/s, p50 %.2f ms, p99 %.2f ms" % (
        point.config,
        point.round,
        point.concurrency,
        result["rps"],
        result["p50_ms"],
        result["p99_ms"],
    )
    if point.cpu_ms_per_req is not None:
        text += ", server CPU %.4f ms/req (frontend %.4f)" % (
            point.cpu_ms_per_req,
            point.frontend_cpu_ms_per_req or 0.0,
        )
    if point.other_cores is not None and point.other_cores > 0.2:
        text += " (BUSY MACHINE: others used %.2f cores)" % point.other_cores
    if result["failed"]:
        text += ", %d FAILED %s" % (result["failed"], result.get("first_failure") or "")
    return text


def _plan_dict(plan: Plan) -> Dict[str, Any]:
    out = asdict(plan)
    out["body_bytes"] = len(out.pop("body"))
    out["concurrency"] = list(plan.concurrency)
    return out


def _median(values: List[float]) -> float:
    kept = [value for value in values if value is not None and not math.isnan(value)]
    return statistics.median(kept) if kept else math.nan


METRICS = ("rps", "p50_ms", "p90_ms", "p99_ms")


def summary(report: Report) -> Dict[str, Any]:
    """Medians over rounds per config and concurrency, and each config ÷ the first one."""
    rows: Dict[str, Dict[str, Any]] = {}
    for config in report.configs:
        per_c: Dict[str, Any] = {}
        for concurrency in report.plan["concurrency"]:
            points = [
                p for p in report.points if p.config == config.name and p.concurrency == concurrency
            ]
            cell: Dict[str, Any] = {}
            for metric in METRICS:
                values = [p.load[metric] for p in points]
                cell[metric] = _median(values)
                cell[metric + "_rounds"] = values
            cpu = [p.cpu_ms_per_req for p in points if p.cpu_ms_per_req is not None]
            cell["cpu_ms_per_req"] = _median(cpu)
            cell["frontend_cpu_ms_per_req"] = _median(
                [p.frontend_cpu_ms_per_req for p in points if p.frontend_cpu_ms_per_req is not None]
            )
            cell["cpu_ms_per_req_rounds"] = cpu
            cell["failed"] = sum(p.load["failed"] for p in points)
            cell["busiest_other_cores"] = max((p.other_cores or 0.0 for p in points), default=0.0)
            per_c[str(concurrency)] = cell
        starts = [s for s in report.starts if s.config == config.name]
        rows[config.name] = {
            "by_concurrency": per_c,
            "first_ok_s": _median([s.first_ok_s for s in starts]),
            "first_ok_s_rounds": [s.first_ok_s for s in starts],
            "pss_ready_mb": _median([s.pss_ready_mb for s in starts]),
        }
    ratios: Dict[str, Any] = {}
    if len(report.configs) > 1:
        base = rows[report.configs[0].name]
        for config in report.configs[1:]:
            row = rows[config.name]
            ratios[config.name] = {
                "first_ok_s": _ratio(row["first_ok_s"], base["first_ok_s"]),
                "pss_ready_mb": _ratio(row["pss_ready_mb"], base["pss_ready_mb"]),
                "by_concurrency": {
                    c: {
                        key: _ratio(cell[key], base["by_concurrency"][c][key])
                        for key in METRICS + ("cpu_ms_per_req", "frontend_cpu_ms_per_req")
                    }
                    for c, cell in row["by_concurrency"].items()
                },
            }
    return {"configs": rows, "ratios": ratios}


def _ratio(value: float, base: float) -> float:
    if base is None or value is None or not base or math.isnan(base) or math.isnan(value):
        return math.nan
    return value / base
