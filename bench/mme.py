#!/usr/bin/env python
"""Multi-model endpoints: many small models through one endpoint that holds only some.

    .venv/bin/python -m bench.mme [--models 50] [--cap 20] [--duration 30]
                                  [--concurrency 4] [--no-mms] [--out FILE.json]

``--models`` TorchScript MLPs (bench/models.py's ``mlp``, each with its own seeded weights)
are loaded one after another into one multi-model endpoint that holds ``--cap`` of them,
then ``--concurrency`` clients invoke models picked at random from all of them for
``--duration`` seconds. A client does what SageMaker does: a 404 from an invoke means "not
loaded", so it loads the model (``POST /models``) and invokes again. eikit runs with
``EIKIT_MAX_MODELS=--cap`` and unloads the least recently used idle model itself; for
AWS's multi-model-server, which does not unload by itself, the client unloads the least
recently used idle model first (``DELETE /models/{name}``), as SageMaker's host does.

The same client and models drive eikit and, unless ``--no-mms``, AWS's stack
(multi-model-server 1.1.11 + sagemaker-inference + sagemaker-pytorch-inference, in a
virtualenv of its own made on first use: bench/mms.py) one after the other, on 127.0.0.1 only.
See bench/README.md ("Multi-model endpoints").
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import server as srv  # noqa: E402
from bench.inprocess import percentile_ms  # noqa: E402
from bench.mms import (  # noqa: E402
    DEFAULT_MMS_VENV,
    MmsServer,
    ensure_mms_venv,
)

JSON = "application/json"
MIB = 1024 * 1024

_T0 = time.monotonic()

# (method, path, body, headers) -> (status, body); status 0 = no answer (socket error).
Http = Callable[[str, str, Optional[bytes], Dict[str, str]], Tuple[int, bytes]]


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark a multi-model endpoint: eikit, and AWS's MMS side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--models", type=int, default=50, help="models made and loaded in turn")
    p.add_argument("--cap", type=int, default=20, help="models the endpoint holds at once")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of the spread phase")
    p.add_argument("--concurrency", type=int, default=4, help="clients in the spread phase")
    p.add_argument("--hot-calls", type=int, default=200, help="sequential invokes, hot model")
    p.add_argument("--cold-calls", type=int, default=10, help="sequential invokes, cold models")
    p.add_argument("--seed", type=int, default=0, help="seed of the clients' model choice")
    p.add_argument("--no-mms", action="store_true", help="eikit only")
    p.add_argument("--no-eikit", action="store_true", help="MMS only")
    p.add_argument("--mms-venv", type=Path, default=DEFAULT_MMS_VENV, help="MMS's virtualenv")
    p.add_argument("--serve-cmd", default=None, help="eikit's server (default: venv's serve)")
    p.add_argument("--ready-timeout", type=float, default=120.0, help="max wait for /ping 200")
    p.add_argument("--keep", action="store_true", help="keep the work dir (models, logs)")
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    a = p.parse_args(argv)
    if a.cap < 1 or a.models <= a.cap:
        p.error("need 1 <= --cap < --models (else nothing is ever evicted)")
    if a.concurrency < 1 or a.concurrency >= a.cap:
        p.error("need 1 <= --concurrency < --cap (else every loaded model may be busy: 507)")
    if a.duration <= 0 or a.hot_calls < 1 or a.cold_calls < 0:
        p.error("--duration and --hot-calls must be positive, --cold-calls >= 0")
    if a.no_mms and a.no_eikit:
        p.error("--no-mms and --no-eikit leave nothing to measure")
    return a


# ------------------------------------------------------------------------------ the client


def summary_ms(samples_ns: List[int]) -> Dict[str, Any]:
    """Count, p50 and p99 (nearest rank, ms) of nanosecond samples."""
    return {
        "n": len(samples_ns),
        "p50_ms": percentile_ms(samples_ns, 50),
        "p99_ms": percentile_ms(samples_ns, 99),
    }


class SageMakerClient:
    """Invoke models of a multi-model endpoint by name, the way SageMaker does.

    ``invoke(name)``: ``POST /models/{name}/invoke``; a 404 means "not loaded": load it
    (``POST /models {"model_name", "url"}``) and invoke again. Two clients missing the same
    model load it once (the second waits for the first), as SageMaker's router does.

    ``evict_at``: for a server that does not unload models by itself (MMS). Before a load,
    when this many models are loaded (as far as this client knows), the least recently
    used one no client is invoking is unloaded first (``DELETE /models/{name}``), as
    SageMaker's host does when the instance's memory is full. None: the server makes room.

    Thread-safe; counts every answer by (operation, status).
    """

    def __init__(
        self,
        http: Http,
        urls: Dict[str, str],
        body: bytes,
        check: Optional[Callable[[str, bytes], str]] = None,
        evict_at: Optional[int] = None,
        attempts: int = 3,
    ) -> None:
        self.http = http
        self.urls = urls
        self.body = body
        self.check = check
        self.evict_at = evict_at
        self.attempts = attempts
        self.lock = threading.Lock()
        self.loaded: OrderedDict[str, None] = OrderedDict()  # as the client knows, LRU first
        self.in_use: Counter[str] = Counter()
        self.loading: Dict[str, threading.Lock] = {}
        self.generation: Counter[str] = Counter()  # successful loads of each model
        self.pending: Counter[str] = Counter()  # loads in flight, by model
        self.statuses: Counter[str] = Counter()  # "invoke 200", "load 404", ...
        self.wrong: List[str] = []  # answers that are not the model's
        self.load_ns: List[int] = []  # successful loads (with the unload before, if any)
        self.loads = 0
        self.client_evictions = 0

    def _count(self, op: str, status: int) -> None:
        with self.lock:
            self.statuses[f"{op} {status}"] += 1

    def _call(self, op: str, method: str, path: str, body: Optional[bytes]) -> Tuple[int, bytes]:
        headers = {"Content-Type": JSON, "Accept": JSON} if body is not None else {}
        try:
            status, answer = self.http(method, path, body, headers)
        except OSError as exc:  # refused, reset, timed out: no HTTP status
            status, answer = 0, str(exc).encode()
        self._count(op, status)
        return status, answer

    def _victim(self) -> Optional[str]:
        """With the lock held: the least recently used loaded model nobody invokes."""
        for name in self.loaded:
            if not self.in_use[name]:
                return name
        return None

    def load(self, name: str) -> int:
        """Load ``name`` (unloading one first under ``evict_at``); the load's status."""
        t0 = time.perf_counter_ns()
        victim = None
        with self.lock:
            self.loaded.pop(name, None)
            if self.evict_at is not None and len(self.loaded) >= self.evict_at:
                victim = self._victim()
                if victim is not None:
                    del self.loaded[victim]
            self.loaded[name] = None  # counts against the cap while it loads
            self.pending[name] += 1
        if victim is not None:
            status, _ = self._call("unload", "DELETE", "/models/" + quote(victim, safe=""), None)
            if status == 200:
                with self.lock:
                    self.client_evictions += 1
        request = json.dumps({"model_name": name, "url": self.urls[name]}).encode()
        status, _ = self._call("load", "POST", "/models", request)
        elapsed = time.perf_counter_ns() - t0
        with self.lock:
            self.pending[name] -= 1
            if status == 200:
                self.loads += 1
                self.load_ns.append(elapsed)
            if status in (200, 409):  # 409: loaded already (by someone else): fine
                self.generation[name] += 1
            else:
                self.loaded.pop(name, None)
        return status

    def invoke(self, name: str) -> Dict[str, Any]:
        """One invoke as SageMaker makes it: {"kind", "ns", "load_ns", "status"}. Kind
        "hot": answered at once; "cold": 404, then loaded by this client or another, then
        answered; "joined": answered while another client's load of it was in flight (eikit
        holds such an invoke until the load ends, where MMS answers 404)."""
        t0 = time.perf_counter_ns()
        path = "/models/%s/invoke" % quote(name, safe="")
        with self.lock:
            self.in_use[name] += 1
        kind, load_ns = "hot", 0
        try:
            for attempt in range(self.attempts):
                with self.lock:
                    generation = self.generation[name]
                    overlapped = self.pending[name] > 0
                status, answer = self._call("invoke", "POST", path, self.body)
                with self.lock:
                    overlapped |= self.pending[name] > 0 or self.generation[name] != generation
                if status != 404 or attempt == self.attempts - 1:
                    if kind == "hot" and overlapped:
                        kind = "joined"
                    break
                kind = "cold"
                l0 = time.perf_counter_ns()
                with self.lock:
                    gate = self.loading.setdefault(name, threading.Lock())
                with gate:  # one load per model at a time; the others wait for it
                    with self.lock:
                        # Loaded by another client since this invoke was sent: just retry.
                        stale = self.generation[name] == generation
                    if stale:
                        self.load(name)
                load_ns += time.perf_counter_ns() - l0
        finally:
            with self.lock:
                self.in_use[name] -= 1
        if status == 200:
            with self.lock:
                if name in self.loaded:
                    self.loaded.move_to_end(name)
                else:
                    self.loaded[name] = None
            verdict = self.check(name, answer) if self.check else "ok"
            if verdict != "ok":
                with self.lock:
                    self.wrong.append(f"{name}: {verdict}")
        return {
            "kind": kind,
            "ns": time.perf_counter_ns() - t0,
            "load_ns": load_ns,
            "status": status,
        }


def spread(
    client: SageMakerClient,
    names: List[str],
    duration: float,
    concurrency: int,
    seed: int = 0,
    progress: Optional[Callable[[List[Dict[str, Any]], float], None]] = None,
) -> Dict[str, Any]:
    """``concurrency`` threads invoke models picked at random from ``names`` for
    ``duration`` seconds; their calls and the wall time."""
    calls: List[Dict[str, Any]] = []
    stop = time.monotonic() + duration

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < stop:
            call = client.invoke(rng.choice(names))
            with client.lock:
                calls.append(call)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    report = t0 + 5.0
    while True:
        alive = [t for t in threads if t.is_alive()]
        if not alive:
            break
        alive[0].join(timeout=max(0.0, report - time.monotonic()))
        if time.monotonic() >= report:
            report += 5.0
            if progress is not None:
                with client.lock:
                    snapshot = list(calls)
                progress(snapshot, time.monotonic() - t0)
    return {"calls": calls, "wall_s": time.monotonic() - t0}


def spread_summary(calls: List[Dict[str, Any]], wall_s: float) -> Dict[str, Any]:
    ok = [c for c in calls if c["status"] == 200]
    hot = [c["ns"] for c in ok if c["kind"] == "hot"]
    cold = [c["ns"] for c in ok if c["kind"] == "cold"]
    joined = [c["ns"] for c in ok if c["kind"] == "joined"]
    return {
        "requests": len(calls),
        "ok": len(ok),
        "rps": len(ok) / wall_s if wall_s > 0 else float("nan"),
        "wall_s": round(wall_s, 2),
        "cold_share": len(cold) / len(ok) if ok else float("nan"),
        "hot": summary_ms(hot),
        "cold": summary_ms(cold),
        "joined": summary_ms(joined),
        "cold_load": summary_ms([c["load_ns"] for c in ok if c["kind"] == "cold"]),
        "failed": dict(Counter(str(c["status"]) for c in calls if c["status"] != 200)),
    }


def bad_statuses(statuses: Dict[str, int]) -> Dict[str, int]:
    """The answers that are errors: 5xx and no-answer, or any 4xx but an invoke's 404
    (not loaded: the protocol) and a load's 409 (loaded already)."""
    fine = {"invoke 200", "invoke 404", "load 200", "load 409", "unload 200"}
    return {k: v for k, v in sorted(statuses.items()) if k not in fine}


def metric_value(text: str, name: str) -> Optional[float]:
    """The value of an unlabelled Prometheus sample ``name`` in ``text``; None if absent."""
    match = re.search(r"^%s(?:\{\})?\s+(\S+)\s*$" % re.escape(name), text, re.MULTILINE)
    return float(match.group(1)) if match else None


# ---------------------------------------------------------------------------------- report


def _cell(x: Any, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


# (label, path into a server's summary, format); latencies in ms, memory in MiB.
ROWS = [
    ("load p50 ms", ("load", "p50_ms"), ".1f"),
    ("load p99 ms", ("load", "p99_ms"), ".1f"),
    ("load p50 ms, below the cap", ("load_below_cap", "p50_ms"), ".1f"),
    ("load p50 ms, at the cap", ("load_at_cap", "p50_ms"), ".1f"),
    ("server CPU ms per load", ("load_cpu_ms",), ".0f"),
    ("hot invoke p50 ms (c=1)", ("hot", "p50_ms"), ".2f"),
    ("hot invoke p99 ms (c=1)", ("hot", "p99_ms"), ".2f"),
    ("server CPU ms per hot invoke", ("hot_cpu_ms",), ".2f"),
    ("cold invoke p50 ms (c=1)", ("cold", "p50_ms"), ".1f"),
    ("cold invoke p99 ms (c=1)", ("cold", "p99_ms"), ".1f"),
    ("spread req/s", ("spread", "rps"), ".1f"),
    ("spread requests answered", ("spread", "ok"), ".0f"),
    ("spread cold share", ("spread", "cold_share"), ".2f"),
    ("spread hot p50 ms", ("spread", "hot", "p50_ms"), ".2f"),
    ("spread hot p99 ms", ("spread", "hot", "p99_ms"), ".2f"),
    ("spread cold p50 ms", ("spread", "cold", "p50_ms"), ".1f"),
    ("spread cold p99 ms", ("spread", "cold", "p99_ms"), ".1f"),
    ("spread joined a load", ("spread", "joined", "n"), ".0f"),
    ("evictions (server metric)", ("evictions_server",), ".0f"),
    ("evictions (client count)", ("evictions_client",), ".0f"),
    ("PSS per loaded model MiB", ("memory", "per_model_pss_mib"), ".1f"),
    ("model memoryBytes MiB", ("memory", "model_memory_mib"), ".1f"),
    ("server PSS, cap loaded MiB", ("memory", "full_pss_mib"), ".0f"),
    ("server RSS, cap loaded MiB", ("memory", "full_rss_mib"), ".0f"),
    ("server PSS, no model MiB", ("memory", "empty_pss_mib"), ".0f"),
    ("errors (5xx, other 4xx, wrong)", ("errors_total",), ".0f"),
    ("machine load avg (1 min)", ("loadavg",), ".1f"),
]


def _dig(doc: Dict[str, Any], path: Tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)  # type: ignore[assignment]
    return doc


def format_report(servers: Dict[str, Dict[str, Any]]) -> str:
    """One row per figure, one column per server (eikit, mms), and eikit ÷ MMS."""
    names = [n for n in ("eikit", "mms") if n in servers]
    head = f"{'':<31}" + "".join(f"{n:>11}" for n in names)
    both = len(names) == 2
    if both:
        head += f"{'eikit/MMS':>11}"
    lines = [head, "-" * len(head)]
    for label, path, spec in ROWS:
        values = [_dig(servers[n], path) for n in names]
        line = f"{label:<31}" + "".join(f"{_cell(v, spec):>11}" for v in values)
        if both:
            a, b = values
            numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
            ratio = a / b if numbers and b else None
            line += f"{_cell(ratio, '.2f'):>11}"
        lines.append(line)
    for n in names:
        bad = servers[n].get("bad_statuses") or {}
        wrong = servers[n].get("wrong") or []
        if bad or wrong:
            lines.append(f"{n}: ERRORS {bad} wrong answers {len(wrong)} {wrong[:3]}")
        if servers[n].get("error"):
            lines.append(f"{n}: FAILED: {servers[n]['error']}")
    return "\n".join(lines)


def memory_cap_mb(per_model_bytes: Optional[float], cap: int) -> Optional[int]:
    """The ``EIKIT_MODELS_MEMORY_MB`` that holds ``cap`` models of that size, not cap+1."""
    if not per_model_bytes:
        return None
    return int(math.ceil(per_model_bytes * (cap + 0.5) / MIB))


# ---------------------------------------------------------------------------------- models


def make_models(work: Path, count: int) -> Tuple[Dict[str, str], bytes, Dict[str, bytes]]:
    """``count`` MLPs with seeds 1..count under ``work``: urls by name, the request body,
    and each model's answer to it computed in-process (to check the servers' answers)."""
    from bench import inprocess, models

    spec = models.get("mlp")
    body = models.request_body(spec)
    urls, want = {}, {}
    for i in range(count):
        name = "mlp-%02d" % i
        path = models.save_torchscript(spec, work / "models" / name / "model.pt", seed=i + 1)
        urls[name] = str(path.parent)
        want[name] = inprocess.make_handler(inprocess.load_model(str(path)), JSON)(body)
    if len(set(want.values())) != count:
        raise RuntimeError("two models gave the same answer: the weights are not distinct")
    return urls, body, want


def checker(want: Dict[str, bytes]) -> Callable[[str, bytes], str]:
    from bench import models
    from bench.run import check_prediction

    spec = models.get("mlp")
    return lambda name, got: check_prediction(got, want[name], spec)


def tree_memory(pid: int) -> Dict[str, float]:
    from eikit import procs

    return {
        "pss_mib": procs.trees_pss([pid]) / MIB,
        "rss_mib": procs.tree_rss(pid) / MIB,
        "processes": len(procs.tree(pid)),
    }


class TreeCpu:
    """CPU seconds used by a process tree, sampled every ``interval`` s in a thread.

    Each process counts with the user + system time last seen for it, alive or gone since
    (keyed by pid and start time). Reaped children's times (``cutime``) are not used: MMS
    does not reap its killed workers (their time would vanish) where eikit does, so only
    what was seen counts, the same way for both; a process loses at most its last
    ``interval`` s."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root = root
        self.interval = interval
        self.seen: Dict[Tuple[int, str], float] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> float:
        from eikit import procs

        for pid in procs.tree(self.root):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # fields from #3 (state) on
            used = (int(fields[11]) + int(fields[12])) / srv._TICK  # utime + stime
            with self.lock:
                key = (pid, fields[19])  # starttime: a reused pid is another process
                self.seen[key] = max(used, self.seen.get(key, 0.0))
        return self.total()

    def total(self) -> float:
        with self.lock:
            return sum(self.seen.values())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeCpu:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def http_for(base: str, timeout: float = 300.0) -> Http:
    def call(method: str, path: str, body: Optional[bytes], headers: Dict[str, str]) -> Any:
        return srv.http(method, base + path, body, headers, timeout=timeout)

    return call


def loaded_names(http: Http) -> List[str]:
    """The models the server lists as loaded (every page of ``GET /models``)."""
    found: List[str] = []
    token = ""
    while True:
        path = "/models" + ("?next_page_token=" + quote(token, safe="") if token else "")
        code, text = http("GET", path, None, {})
        if code != 200:
            raise RuntimeError(f"GET {path} answered {code}: {text[:200]!r}")
        page = json.loads(text)
        found += [m["modelName"] for m in page.get("models", [])]
        token = page.get("nextPageToken") or ""
        if not token:
            return found


# -------------------------------------------------------------------------------- one server


def bench_server(
    label: str,
    server: srv.Server,
    a: argparse.Namespace,
    urls: Dict[str, str],
    body: bytes,
    want: Dict[str, bytes],
) -> Dict[str, Any]:
    names = sorted(urls)
    res: Dict[str, Any] = {"server": label}
    load0 = os.getloadavg()[0]
    log(f"{label}: starting (machine load average {load0:.1f}) ...")
    server.start()
    res["ready_s"] = round(server.startup_s, 2)
    assert server.proc is not None
    root = server.proc.pid
    res["command"] = server.serve_cmd
    log(f"{label}: ready in {server.startup_s:.1f}s at {server.url}")
    http = http_for(server.url)
    evict_at = a.cap if label == "mms" else None
    client = SageMakerClient(http, urls, body, check=checker(want), evict_at=evict_at)
    mem: Dict[str, Any] = {}
    empty = tree_memory(root)
    mem["empty_pss_mib"], mem["empty_rss_mib"] = empty["pss_mib"], empty["rss_mib"]

    # 1. Every model once, in turn: load, then one invoke (checked).
    t1 = time.monotonic()
    cpu = TreeCpu(root).__enter__()
    cpu1 = cpu.sample()
    for i, name in enumerate(names):
        status = client.load(name)
        if status != 200:
            raise RuntimeError(f"loading {name} answered {status}; log:\n{server.log_tail()}")
        first = client.invoke(name)
        if first["status"] != 200 or first["kind"] != "hot":
            raise RuntimeError(f"{name} just loaded: invoke {first}; log:\n{server.log_tail()}")
        if i + 1 == a.cap:
            full = tree_memory(root)
            mem["full_pss_mib"], mem["full_rss_mib"] = full["pss_mib"], full["rss_mib"]
            mem["processes_full"] = full["processes"]
            mem["per_model_pss_mib"] = (full["pss_mib"] - empty["pss_mib"]) / a.cap
            if label == "eikit":
                sizes = []
                for n in names[: a.cap]:
                    code, text = http("GET", "/models/" + quote(n, safe=""), None, {})
                    if code == 200:
                        sizes.append(json.loads(text)["memoryBytes"])
                sizes.sort()
                mem["model_memory_bytes"] = sizes
                mem["model_memory_mib"] = sizes[len(sizes) // 2] / MIB if sizes else None
        if (i + 1) % 10 == 0 or i + 1 == len(names):
            log(
                f"{label}: loaded {i + 1}/{len(names)} "
                f"(last load {client.load_ns[-1] / 1e6:.0f} ms, {time.monotonic() - t1:.0f}s)"
            )
    res["load"] = summary_ms(list(client.load_ns))
    # Below the cap a load only loads; at the cap it first unloads one (server or client).
    res["load_below_cap"] = summary_ms(client.load_ns[: a.cap])
    res["load_at_cap"] = summary_ms(client.load_ns[a.cap :])
    res["load_phase_s"] = round(time.monotonic() - t1, 1)
    # The server's CPU per load (and the one invoke after it): unlike wall time, it
    # hardly moves with what else the machine runs.
    res["load_cpu_ms"] = (cpu.sample() - cpu1) * 1e3 / len(names)
    res["memory"] = mem

    # 2. Hot: one loaded model, sequential. 3. Cold: models not loaded, sequential.
    loaded = loaded_names(http)
    hot_name = names[len(names) - 1]  # the last loaded: the most recently used
    cpu2 = cpu.sample()
    hot = [client.invoke(hot_name) for _ in range(a.hot_calls)]
    res["hot_cpu_ms"] = (cpu.sample() - cpu2) * 1e3 / a.hot_calls
    cpu.__exit__()
    res["hot"] = summary_ms([c["ns"] for c in hot if c["status"] == 200 and c["kind"] == "hot"])
    cold_names = [n for n in names if n not in loaded][: a.cold_calls]
    cold = [client.invoke(n) for n in cold_names]
    res["cold"] = summary_ms([c["ns"] for c in cold if c["status"] == 200 and c["kind"] == "cold"])
    log(
        f"{label}: hot invoke p50 {res['hot']['p50_ms']:.2f} ms; cold (404, load, invoke) "
        f"p50 {res['cold']['p50_ms']:.0f} ms over {len(cold)}"
    )

    # 4. Spread: random models, all of them, from several clients at once.
    def progress(calls: List[Dict[str, Any]], elapsed: float) -> None:
        ok = sum(1 for c in calls if c["status"] == 200)
        cold_n = sum(1 for c in calls if c["kind"] == "cold")
        log(
            f"{label}: spread {elapsed:.0f}/{a.duration:g}s: {ok} ok ({cold_n} cold), "
            f"{len(calls) - ok} failed"
        )

    log(f"{label}: spread over {len(names)} models, {a.concurrency} clients, {a.duration:g}s")
    run = spread(client, names, a.duration, a.concurrency, a.seed, progress)
    res["spread"] = spread_summary(run["calls"], run["wall_s"])
    sp = res["spread"]
    log(
        f"{label}: spread {sp['rps']:.1f} req/s, {sp['cold_share']:.0%} cold, hot p50 "
        f"{sp['hot']['p50_ms']:.1f} ms, cold p50 {sp['cold']['p50_ms']:.0f} ms"
    )

    # Evictions: the server's own count (eikit), and loads minus what is loaded now.
    loaded_now = len(loaded_names(http))
    res["loaded_at_end"] = loaded_now
    res["evictions_client"] = client.loads - loaded_now
    if label == "eikit":
        code, text = http("GET", "/metrics", None, {})
        value = metric_value(text.decode(), "eikit_models_evicted") if code == 200 else None
        res["evictions_server"] = value
    res["client_unloads"] = client.client_evictions
    res["loads"] = client.loads
    res["statuses"] = dict(sorted(client.statuses.items()))
    res["bad_statuses"] = bad_statuses(client.statuses)
    res["wrong"] = list(client.wrong)
    res["errors_total"] = sum(res["bad_statuses"].values()) + len(client.wrong)
    res["loadavg"] = (load0 + os.getloadavg()[0]) / 2
    log(f"{label}: answers {res['statuses']}")
    return res


def run_one(label: str, make: Callable[[], srv.Server], *args: Any) -> Dict[str, Any]:
    server = make()
    try:
        return bench_server(label, server, *args)
    except Exception as exc:  # report what failed, keep the other server's figures
        log(f"{label}: FAILED: {type(exc).__name__}: {exc}")
        return {"server": label, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        rc = server.stop()
        log(f"{label}: stopped (exit code {rc})")


def main(argv: Optional[List[str]] = None) -> int:
    a = parse_args(argv)
    import torch

    facts = {
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_at_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    log(f"machine: {facts}")
    results: Dict[str, Dict[str, Any]] = {}
    mms_info: Dict[str, Any] = {}
    if not a.no_mms:
        try:
            mms_info = ensure_mms_venv(a.mms_venv.resolve(), torch.__version__, log)
            log(f"mms: {mms_info['java_version']}; {', '.join(mms_info['packages'])}")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            log(f"mms: cannot be set up, eikit only: {exc}")
            results["mms"] = {"server": "mms", "error": f"setup: {exc}"}
    with tempfile.TemporaryDirectory(prefix="eikit-bench-mme-") as tmp:
        work = Path(tempfile.mkdtemp(prefix="eikit-bench-mme-keep-")) if a.keep else Path(tmp)
        log(f"building {a.models} TorchScript MLPs (distinct seeds) in {work} ...")
        urls, body, want = make_models(work, a.models)
        common = (a, urls, body, want)
        if not a.no_eikit:
            (work / "eikit").mkdir()

            def make_eikit() -> srv.Server:
                env = {
                    "SAGEMAKER_MULTI_MODEL": "true",
                    "EIKIT_MAX_MODELS": str(a.cap),
                    "EIKIT_MODELS_ROOT": str(work),  # the models' urls are under it
                }
                return srv.Server(
                    work / "eikit",
                    workers=1,
                    threads=1,
                    serve_cmd=a.serve_cmd,
                    log_path=work / "eikit" / "server.log",
                    ready_timeout=a.ready_timeout,
                    extra_env=env,
                )

            results["eikit"] = run_one("eikit", make_eikit, *common)
        if not a.no_mms and "mms" not in results:
            (work / "mms").mkdir()
            venv = Path(mms_info["venv"])
            results["mms"] = run_one(
                "mms", lambda: MmsServer(venv, work / "mms", a.ready_timeout), *common
            )
            results["mms"]["setup"] = mms_info
        if a.keep:
            log(f"work dir kept at {work}")
    print()
    print(
        f"multi-model endpoint: {a.models} MLPs, holds {a.cap}; spread: {a.concurrency} clients "
        f"x {a.duration:g}s, random models; 127.0.0.1; {facts['cpus']} cores"
    )
    print(format_report(results))
    per = (results.get("eikit") or {}).get("memory", {}).get("model_memory_mib")
    cap_mb = memory_cap_mb(per * MIB if per else None, a.cap)
    if cap_mb:
        print(
            f"EIKIT_MAX_MODELS={a.cap} ~ EIKIT_MODELS_MEMORY_MB={cap_mb} "
            f"({a.cap + 0.5:g} x the median model's measured {per:.1f} MiB)"
        )
    if a.out:
        doc = {"machine": facts, "config": {k: str(v) for k, v in vars(a).items()}}
        doc["results"] = results
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        log(f"wrote {a.out}")
    failed = any(r.get("error") or r.get("errors_total") for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
