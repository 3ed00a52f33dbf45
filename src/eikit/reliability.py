"""``eikit reliability``: serve a model, keep it loaded, kill and hang workers, count answers.

A real ``serve`` process on a free loopback port, sustained concurrent load from threads
(keep-alive connections), and faults injected mid-run: a worker killed with SIGKILL, and
one stopped with SIGSTOP (its request must get 504 and the worker be replaced). Every
request is counted: sent, answered 2xx, answered with each error status, unanswered (no
HTTP answer at all: the run fails unless that is 0). Also reported: how long each fault
took to recover (until ``/ping`` says 200 and every worker is ready again), what ``/ping``
answered during the run, and the memory (RSS) of the server's process tree before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional

from eikit import reliability_mme
from eikit.bench.load import Request
from eikit.bench.load import run as run_load
from eikit.errors import ConfigurationError
from eikit.local import ServerProcess, layout_model_tree
from eikit.ping import status as ping_status
from eikit.procs import tree_rss, worker_pids

log = logging.getLogger(__name__)

FAULTS = ("kill", "hang")
REPLACED = "replaced and ready"  # the frontend's log line when a replacement serves

# The built-in sample: a nearest-centroid iris classifier in plain numpy, so the run
# measures the server rather than a framework (the PyTorch runtime still hosts it).
SAMPLE_SCRIPT = '''\
"""eikit reliability's built-in sample: nearest centroid over the iris species' means."""
import json
import os

import numpy as np

LABELS = ["setosa", "versicolor", "virginica"]


def model_fn(model_dir):
    with open(os.path.join(model_dir, "centroids.json")) as handle:
        return np.array(json.load(handle), dtype=np.float32)


def input_fn(input_data, content_type):
    return np.array(json.loads(input_data)["inputs"], dtype=np.float32)


def predict_fn(data, model):
    distances = ((data[:, None, :] - model[None, :, :]) ** 2).sum(axis=-1)
    return distances.argmin(axis=1)


def output_fn(prediction, accept):
    return json.dumps({"labels": [LABELS[int(i)] for i in prediction]}), "application/json"
'''
SAMPLE_CENTROIDS = [[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]]
SAMPLE_BODY = b'{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'


def write_sample(dest: Path) -> Path:
    """The built-in sample as a SageMaker base dir (``dest/model``); returns ``dest``."""
    code = dest / "model" / "code"
    code.mkdir(parents=True)
    (dest / "model" / "centroids.json").write_text(json.dumps(SAMPLE_CENTROIDS))
    (code / "inference.py").write_text(SAMPLE_SCRIPT)
    return dest


# --- counting ------------------------------------------------------------------------


class Tally:
    """Thread-safe counts of what the clients got."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.statuses: Counter = Counter()
        self.unanswered: Counter = Counter()  # exception type -> count

    def answered(self, status: int) -> None:
        with self.lock:
            self.sent += 1
            self.statuses[status] += 1

    def lost(self, reason: str) -> None:
        with self.lock:
            self.sent += 1
            self.unanswered[reason] += 1

    def snapshot(self) -> Dict[str, Any]:
        with self.lock:
            ok = sum(n for status, n in self.statuses.items() if 200 <= status < 300)
            errors = {
                str(status): n for status, n in sorted(self.statuses.items()) if status >= 300
            }
            return {
                "sent": self.sent,
                "ok": ok,
                "errors": errors,
                "unanswered": sum(self.unanswered.values()),
                "unanswered_reasons": dict(self.unanswered),
            }


class Load(threading.Thread):
    """``concurrency`` clients sending one request after another on keep-alive connections
    (eikit.bench.load) until ``stop`` is set, then waiting for the answers in flight; every
    answer and every request left unanswered goes to ``tally`` as it happens."""

    def __init__(
        self,
        request: Request,
        concurrency: int,
        timeout: float,
        tally: Tally,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="eikit-reliability-load", daemon=True)
        self.request, self.concurrency, self.timeout = request, concurrency, timeout
        self.tally, self.stop = tally, stop

    def run(self) -> None:
        run_load(
            self.request,
            self.concurrency,
            engine="python",
            timeout=self.timeout,
            stop=self.stop,
            on_answer=self.tally.answered,
            on_lost=self.tally.lost,
            drain=True,
        )


def ping(port: int, timeout: float = 5.0) -> int:
    """``/ping``'s status on this machine's ``port``; 0 when nothing answered."""
    return ping_status("http://127.0.0.1:%d" % port, timeout)


class Pinger(threading.Thread):
    """Polls ``/ping`` through the run, as SageMaker's health check does."""

    def __init__(self, port: int, stop: threading.Event, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.interval = port, stop, interval
        self.statuses: Counter = Counter()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.statuses[ping(self.port)] += 1


# --- the server's processes ------------------------------------------------------------


# The process tree and its memory: eikit.procs.


# --- the run ----------------------------------------------------------------------------


class Run:
    def __init__(self, args: argparse.Namespace, base: Path, body: bytes, log_path: Path):
        self.args = args
        self.body = body
        self.log_path = log_path
        env = {
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers),
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(args.timeout),
        }
        if args.model_dir is None:
            env["EIKIT_WORKER_THREADS"] = "1"
        self.server = ServerProcess(base, env)
        self.tally = Tally()
        self.stop_load = threading.Event()
        self.started = 0.0  # the run's clock (progress lines)
        self.load_started = 0.0  # the load's clock (fault times, duration)
        self.faults: List[Dict[str, Any]] = []

    def say(self, text: str) -> None:
        if not self.args.quiet:
            sys.stderr.write("[%6.1fs] %s\n" % (time.monotonic() - self.started, text))
            sys.stderr.flush()

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def progress(self) -> str:
        counts = self.tally.snapshot()
        errors = " ".join("%s:%d" % item for item in counts["errors"].items()) or "none"
        return "sent %d  2xx %d  errors %s  unanswered %d" % (
            counts["sent"],
            counts["ok"],
            errors,
            counts["unanswered"],
        )

    def wait_recovered(self, victim: int, replaced_before: int) -> Optional[float]:
        """Seconds from now until a replacement serves, /ping is 200 and every worker is
        up again; None past --recovery-timeout."""
        assert self.server.process is not None
        started = time.monotonic()
        deadline = started + self.args.recovery_timeout
        while time.monotonic() < deadline:
            workers = worker_pids(self.server.process.pid)
            if (
                self.server_log().count(REPLACED) > replaced_before
                and victim not in workers
                and len(workers) >= self.args.workers
                and ping(self.server.port) == 200
            ):
                return time.monotonic() - started
            time.sleep(0.05)
        return None

    def inject(self, kind: str) -> Dict[str, Any]:
        assert self.server.process is not None
        workers = worker_pids(self.server.process.pid)
        if not workers:
            return {"fault": kind, "error": "no worker process to fault"}
        victim = workers[0]
        before = self.server_log().count(REPLACED)
        at = time.monotonic() - self.load_started
        if kind == "kill":
            self.say("fault: SIGKILL worker pid %d" % victim)
            os.kill(victim, signal.SIGKILL)
        else:
            self.say("fault: SIGSTOP worker pid %d (hung; expect 504, then a new worker)" % victim)
            os.kill(victim, signal.SIGSTOP)
        recovered = self.wait_recovered(victim, before)
        if recovered is None:
            self.say("NOT recovered within %gs" % self.args.recovery_timeout)
        else:
            self.say("recovered in %.2fs: replacement ready, /ping 200" % recovered)
        return {
            "fault": kind,
            "pid": victim,
            "at_s": round(at, 2),
            "recovered_s": None if recovered is None else round(recovered, 2),
        }

    def execute(self) -> Dict[str, Any]:
        args = self.args
        self.started = time.monotonic()
        self.server.start(stdout=self.log_path.open("wb"))
        assert self.server.process is not None
        status = self.server.wait_ready(args.startup_timeout)
        if status != 200:
            raise ConfigurationError(
                "the server did not become ready (/ping %s); its log:\n%s"
                % (status or "no answer", self.server_log()[-4000:])
            )
        self.say("server ready on %s with %d worker(s)" % (self.server.url, args.workers))
        load = Load(
            Request.invocation(self.server.url, self.body, args.content_type),
            args.concurrency,
            args.timeout + args.recovery_timeout,
            self.tally,
            self.stop_load,
        )
        pinger = Pinger(self.server.port, self.stop_load)
        self.load_started = time.monotonic()
        for thread in (load, pinger):
            thread.start()
        self._sleep_until(min(2.0, args.duration / 4), progress=False)
        rss_before = tree_rss(self.server.process.pid)
        self.say("warm: %s; server tree RSS %.0f MiB" % (self.progress(), rss_before / 2**20))
        for position, kind in enumerate(args.faults):
            self._sleep_until(args.duration * (position + 1) / (len(args.faults) + 1))
            self.faults.append(self.inject(kind))
        self._sleep_until(args.duration)
        self.stop_load.set()
        for thread in (load, pinger):
            thread.join(args.timeout + args.recovery_timeout + 10)
        elapsed = time.monotonic() - self.load_started
        rss_after = tree_rss(self.server.process.pid)
        self.say("load stopped: %s" % self.progress())
        exit_code = self.server.stop(60)
        counts = self.tally.snapshot()
        report: Dict[str, Any] = dict(counts)
        report.update(
            {
                "duration_s": round(elapsed, 1),
                "requests_per_s": round(counts["sent"] / max(elapsed, 1e-9), 1),
                "workers": args.workers,
                "concurrency": args.concurrency,
                "timeout_s": args.timeout,
                "faults": self.faults,
                "pings": {str(k): v for k, v in sorted(pinger.statuses.items())},
                "rss_before_mib": round(rss_before / 2**20, 1),
                "rss_after_mib": round(rss_after / 2**20, 1),
                "server_exit_code": exit_code,
            }
        )
        report["passed"] = verdict(report)
        return report

    def _sleep_until(self, at: float, progress: bool = True) -> None:
        next_line = time.monotonic() + 2.0
        while time.monotonic() - self.load_started < at:
            time.sleep(0.05)
            if progress and time.monotonic() >= next_line:
                self.say(self.progress())
                next_line += 2.0


def verdict(report: Dict[str, Any]) -> bool:
    """The run passes when every request was answered, every fault recovered and the
    server stopped cleanly."""
    return (
        report["unanswered"] == 0
        and all(fault.get("recovered_s") is not None for fault in report["faults"])
        and report["server_exit_code"] == 0
    )


def format_report(report: Dict[str, Any]) -> str:
    errors = ", ".join("%s: %d" % item for item in report["errors"].items()) or "none"
    lines = [
        "requests sent        %d in %.1fs (%.0f/s, %d clients, %d workers)"
        % (
            report["sent"],
            report["duration_s"],
            report["requests_per_s"],
            report["concurrency"],
            report["workers"],
        ),
        "answered 2xx         %d" % report["ok"],
        "answered with error  %s" % errors,
        "unanswered           %d%s"
        % (
            report["unanswered"],
            " (%s)" % report["unanswered_reasons"] if report["unanswered"] else "",
        ),
    ]
    for fault in report["faults"]:
        recovered = fault.get("recovered_s")
        lines.append(
            "fault %-14s at %.1fs: %s"
            % (
                fault["fault"] + " (pid %s)" % fault.get("pid", "?"),
                fault.get("at_s", 0.0),
                "recovered in %.2fs" % recovered if recovered is not None else "NOT recovered",
            )
        )
    pings = ", ".join("%s: %d" % item for item in report["pings"].items()) or "none"
    lines += [
        "/ping during the run %s" % pings,
        "server tree RSS      %.0f MiB before, %.0f MiB after"
        % (report["rss_before_mib"], report["rss_after_mib"]),
        "server exit code     %s" % report["server_exit_code"],
        "result               %s" % ("PASS" if report["passed"] else "FAIL"),
    ]
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------


def _fault_list(text: str) -> List[str]:
    faults = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in faults if item not in FAULTS]
    if unknown:
        raise argparse.ArgumentTypeError(
            "unknown fault %s (choose from %s)" % (", ".join(unknown), ", ".join(FAULTS))
        )
    return faults


def _request_body(args: argparse.Namespace) -> bytes:
    if args.body is not None:
        path = Path(args.body)
        if not path.is_file():
            raise ConfigurationError("--body %s is not a file" % path)
        return path.read_bytes()
    if args.data is not None:
        return str(args.data).encode()
    if args.model_dir is not None:
        raise ConfigurationError("with --model-dir, give the request to send: --body or --data")
    return SAMPLE_BODY


def cmd_reliability(args: argparse.Namespace) -> int:
    if args.multi_model:
        return reliability_mme.cmd_multi_model(args)
    body = _request_body(args)
    with tempfile.TemporaryDirectory(prefix="eikit-reliability-") as work:
        if args.model_dir is None:
            base = write_sample(Path(work) / "ml")
        else:
            code = Path(args.code_dir) if args.code_dir else None
            base = layout_model_tree(Path(args.model_dir), code, Path(work) / "ml")
        log_path = Path(args.log) if args.log else Path(work) / "server.log"
        run = Run(args, base, body, log_path)
        try:
            report = run.execute()
        finally:
            run.stop_load.set()
            if run.server.process is not None and run.server.process.poll() is None:
                run.server.stop(60)
        if not report["passed"]:
            sys.stderr.write("server log (tail):\n%s\n" % run.server_log()[-6000:])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0 if report["passed"] else 1


def register(sub: Any) -> None:
    """Add ``eikit reliability`` to the CLI's sub-commands."""
    parser = sub.add_parser(
        "reliability",
        help="serve a model under load, kill and hang workers, count every answer",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--model-dir", help="model folder or model.tar.gz (default: a sample)")
    parser.add_argument("--code-dir", help="folder with the inference script")
    parser.add_argument("--body", help="file to send as each request (with --model-dir)")
    parser.add_argument("--data", help="text to send as each request (with --model-dir)")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (8)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        help="SAGEMAKER_MODEL_SERVER_TIMEOUT for the run: how soon a hung worker's "
        "request gets 504 (2; raise it for slow models)",
    )
    parser.add_argument(
        "--faults",
        type=_fault_list,
        default=list(FAULTS),
        help="faults to inject, in order, spread over the run (default: kill,hang)",
    )
    parser.add_argument(
        "--recovery-timeout", type=float, default=120.0, help="longest wait for recovery (120)"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=300.0, help="longest wait for /ping 200 (300)"
    )
    parser.add_argument("--log", help="keep the server's log in this file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    reliability_mme.add_arguments(parser)
    parser.set_defaults(func=cmd_reliability)
