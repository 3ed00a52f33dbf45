"""``eikit reliability --multi-model``: a multi-model endpoint driven as SageMaker drives it,
under faults, every answer counted.

A real ``serve`` process with ``SAGEMAKER_MULTI_MODEL=true`` on a loopback port, more models
than it may hold (``--models`` against ``--max-models``). Client threads invoke random
models as SageMaker's front end does: a 404 loads the model (``POST /models``) and invokes
again; a 507 unloads the least recently used model and loads again. Another thread unloads
random models, as SageMaker does when it moves or scales. Meanwhile the run kills a model's
worker (SIGKILL), hangs one (SIGSTOP: its request gets 504, the worker is replaced), and
makes one model's loads fail (its worker killed while ``model_fn`` fails: the model must be
restarted, then dropped, then load again once ``model_fn`` works).

Every answer is counted and checked: requests lost (no HTTP answer), wrong answers (a
model's answer names the model and its prediction), 5xx explained by a fault (on the
faulted model, while the fault lasts) and 5xx unexplained. The run passes when none is
lost, none is wrong, no 5xx is unexplained, every fault recovers and the server stops
cleanly. Also reported: recovery times, the server's memory (PSS) before, at its peak,
and after every model is unloaded again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from eikit.errors import ConfigurationError
from eikit.local import ServerProcess
from eikit.procs import alive, trees_pss, worker_pids
from eikit.reliability_traffic import (
    FLAKY,
    Caller,
    Client,
    Tally,
    Unloader,
    progress,
    write_models,
)

MIB = 2**20
FAULTS = ("kill", "hang", "fail-loads")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("multi-model (--multi-model)")
    group.add_argument(
        "--multi-model",
        action="store_true",
        help="drive a multi-model endpoint instead: load, invoke and unload many models while "
        "a worker is killed, one hung and one model's loads fail",
    )
    group.add_argument("--models", type=int, default=10, help="models to drive (10)")
    group.add_argument("--max-models", type=int, default=5, help="EIKIT_MAX_MODELS (5)")
    group.add_argument(
        "--clients",
        type=int,
        default=4,
        help="client threads; each picks models as traffic does, a few hot, most cold (4)",
    )
    group.add_argument(
        "--unload-every", type=float, default=5.0, help="seconds between two unloads (5)"
    )


# --- the run --------------------------------------------------------------------------------


class MultiModelRun:
    def __init__(self, args: argparse.Namespace, work: Path, log_path: Path) -> None:
        self.args, self.work, self.log_path = args, work, log_path
        base = work / "ml"
        self.folders = write_models(base / "models", work, args.models)
        env = {
            "SAGEMAKER_MULTI_MODEL": "true",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(args.timeout),
            "EIKIT_MAX_MODELS": str(args.max_models),
            "EIKIT_WORKER_THREADS": "1",
            "EIKIT_MAX_RELOAD_FAILURES": "1",
            "EIKIT_MODEL_RESTARTS": "1",
            "EIKIT_MODELS_MEASURE_INTERVAL": "2",
        }
        self.server = ServerProcess(base, env)
        self.tally = Tally()
        self.stop = threading.Event()
        self.request_timeout = args.timeout + args.recovery_timeout
        self.started = 0.0
        self.faults: List[Dict[str, Any]] = []
        self.peak = 0

    def say(self, text: str) -> None:
        if not self.args.quiet:
            sys.stderr.write("[%6.1fs] %s\n" % (time.monotonic() - self.started, text))
            sys.stderr.flush()

    def caller(self) -> Caller:
        return Caller(self.server.port, self.request_timeout, self.tally)

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pss(self) -> int:
        assert self.server.process is not None
        return trees_pss([self.server.process.pid])

    def index(self, name: str) -> int:
        return int(self.folders[name].parent.name)

    def worker_of(self, name: str) -> Optional[int]:
        """The pid of ``name``'s worker (its model_fn wrote it), if it is alive."""
        try:
            pid = int((self.work / ("pid-%d" % self.index(name))).read_text())
        except (OSError, ValueError):
            return None
        assert self.server.process is not None
        return pid if alive(pid) and pid in worker_pids(self.server.process.pid) else None

    def probe(self, caller: Caller, name: str) -> Optional[float]:
        """Seconds until ``name`` answers 200 as SageMaker calls it; None past the limit."""
        started = time.monotonic()
        while time.monotonic() - started < self.args.recovery_timeout:
            if caller.as_sagemaker(name, str(self.folders[name]), []) == 200:
                return time.monotonic() - started
            time.sleep(0.05)
        return None

    def loaded_victim(self, caller: Caller, rng: random.Random) -> Tuple[str, int]:
        """A healthy model, loaded and serving, and its worker's pid."""
        deadline = time.monotonic() + self.args.recovery_timeout
        while time.monotonic() < deadline:
            name = rng.choice([n for n in sorted(self.folders) if n != FLAKY])
            if self.probe(caller, name) is not None:
                pid = self.worker_of(name)
                if pid is not None:
                    return name, pid
        raise ConfigurationError("no model could be loaded to inject a fault into")

    def inject(self, kind: str, caller: Caller, rng: random.Random) -> Dict[str, Any]:
        at = time.monotonic() - self.started
        if kind == "fail-loads":
            return self.fail_loads(caller, at)
        name, pid = self.loaded_victim(caller, rng)
        window = self.tally.open_window(name)
        if kind == "kill":
            self.say("fault: SIGKILL the worker of %s (pid %d)" % (name, pid))
            os.kill(pid, signal.SIGKILL)
        else:
            self.say("fault: SIGSTOP the worker of %s (pid %d): expect a 504" % (name, pid))
            os.kill(pid, signal.SIGSTOP)
        recovered = self.probe(caller, name)
        window.end = time.monotonic()
        self.say("%s serves again after %s" % (name, "%.2fs" % recovered if recovered else "NEVER"))
        fault: Dict[str, Any] = {"fault": kind, "model": name, "pid": pid, "at_s": round(at, 2)}
        fault.update(_seconds(recovered_s=recovered))
        return fault

    def fail_loads(self, caller: Caller, at: float) -> Dict[str, Any]:
        """The flaky model's worker dies while its model_fn fails: restarted, dropped (404),
        its loads fail (500); once model_fn works again, it loads as SageMaker asks."""
        flag = self.work / ("fail-%d" % self.index(FLAKY))
        pid = None
        while pid is None:  # loaded and serving, then its loads fail and its worker dies
            self.probe(caller, FLAKY)
            window = self.tally.open_window(FLAKY)
            flag.touch()
            pid = self.worker_of(FLAKY)
            if pid is None:  # evicted or unloaded meanwhile: again
                flag.unlink()
                window.end = time.monotonic()
        mark = len(self.server_log())
        self.say("fault: %s's loads fail; SIGKILL its worker (pid %s)" % (FLAKY, pid))
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        dropped = None
        while time.monotonic() - started < self.args.recovery_timeout:
            if caller.invoke(FLAKY) == 404:
                dropped = time.monotonic() - started
                break
            time.sleep(0.05)
        self.say("%s dropped after %s" % (FLAKY, "%.2fs" % dropped if dropped else "NEVER"))
        refused = caller.load(FLAKY, str(self.folders[FLAKY]))  # still failing: 500
        flag.unlink()
        since = self.server_log()[mark:]
        restarted = "%r: ready -> loading (restart" % FLAKY in since
        failed = "%r: loading -> failed" % FLAKY in since or "%r: ready -> failed" % FLAKY in since
        recovered = self.probe(caller, FLAKY)
        window.end = time.monotonic()
        self.say("%s loads again: %s" % (FLAKY, "%.2fs" % recovered if recovered else "NEVER"))
        fault: Dict[str, Any] = {"fault": "fail-loads", "model": FLAKY, "at_s": round(at, 2)}
        fault.update(load_while_failing=refused, restarted=restarted, dropped=failed)
        fault.update(_seconds(dropped_s=dropped, recovered_s=recovered))
        return fault

    def execute(self) -> Dict[str, Any]:
        args = self.args
        self.started = time.monotonic()
        self.server.start(stdout=self.log_path.open("wb"))
        status = self.server.wait_ready(args.startup_timeout)
        if status != 200:
            raise ConfigurationError(
                "the server did not become ready (/ping %s); its log:\n%s"
                % (status or "no answer", self.server_log()[-4000:])
            )
        before = self.pss()
        self.say(
            "server ready on %s; %d models, at most %d loaded; PSS %.0f MiB"
            % (self.server.url, args.models, args.max_models, before / MIB)
        )
        threads: List[threading.Thread] = [
            Client(self.caller(), self.folders, self.stop, seed) for seed in range(args.clients)
        ]
        threads.append(Unloader(self.caller(), self.stop, args.unload_every))
        load_started = time.monotonic()
        for thread in threads:
            thread.start()
        caller = self.caller()
        rng = random.Random(11)
        for position, kind in enumerate(FAULTS):
            self._wait_until(load_started + args.duration * (position + 1) / (len(FAULTS) + 1))
            self.faults.append(self.inject(kind, caller, rng))
        self._wait_until(load_started + args.duration)
        self.stop.set()
        for thread in threads:
            thread.join(self.request_timeout + 10)
        elapsed = time.monotonic() - load_started
        for name in caller.loaded():
            caller.unload(name)
        after = self.pss()
        self.say("load stopped, every model unloaded; PSS %.0f MiB" % (after / MIB))
        exit_code = self.server.stop(60)
        return self.report(elapsed, before, after, exit_code)

    def _wait_until(self, deadline: float) -> None:
        next_line = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            self.peak = max(self.peak, self.pss())
            if time.monotonic() >= next_line:
                self.say(progress(self.tally))
                next_line += 5.0

    def report(self, elapsed: float, before: int, after: int, exit_code: Optional[int]) -> Dict:
        tally = self.tally
        statuses: Dict[str, Dict[str, int]] = {}
        for (kind, status), count in sorted(tally.statuses.items()):
            statuses.setdefault(kind, {})[str(status)] = count
        log = self.server_log()
        report: Dict[str, Any] = {
            "duration_s": round(elapsed, 1),
            "models": self.args.models,
            "max_models": self.args.max_models,
            "clients": self.args.clients,
            "answered": sum(tally.statuses.values()),
            "statuses": statuses,
            "lost": sum(tally.lost.values()),
            "lost_reasons": {"%s %s" % key: n for key, n in tally.lost.items()},
            "wrong": len(tally.wrong),
            "wrong_examples": tally.wrong[:5],
            "explained_5xx": {"%s %s" % key: n for key, n in sorted(tally.explained.items())},
            "unexplained_5xx": len(tally.unexplained),
            "unexplained_examples": tally.unexplained[:5],
            "faults": self.faults,
            "evictions": log.count("evicted, least recently used"),
            "restarts": log.count("-> loading (restart"),
            "failed": log.count("-> failed"),
            "pss_before_mib": round(before / MIB, 1),
            "pss_peak_mib": round(self.peak / MIB, 1),
            "pss_after_mib": round(after / MIB, 1),
            "server_exit_code": exit_code,
        }
        report["passed"] = (
            report["lost"] == 0
            and report["wrong"] == 0
            and report["unexplained_5xx"] == 0
            and all(f.get("recovered_s") is not None for f in self.faults)
            and exit_code == 0
        )
        return report


def _seconds(**values: Optional[float]) -> Dict[str, Optional[float]]:
    return {key: None if value is None else round(value, 2) for key, value in values.items()}


def format_report(report: Dict[str, Any]) -> str:
    lines = [
        "answers              %d in %.1fs (%d models, at most %d loaded, %d clients)"
        % (
            report["answered"],
            report["duration_s"],
            report["models"],
            report["max_models"],
            report["clients"],
        )
    ]
    for kind, statuses in report["statuses"].items():
        shown = ", ".join("%s: %d" % item for item in statuses.items())
        lines.append("  %-18s %s" % (kind, shown))
    explained = ", ".join("%s: %d" % item for item in report["explained_5xx"].items())
    lines += [
        "lost                 %d%s"
        % (report["lost"], " (%s)" % report["lost_reasons"] if report["lost"] else ""),
        "wrong answers        %d" % report["wrong"],
        "5xx by the faults    %s" % (explained or "none"),
        "5xx unexplained      %d" % report["unexplained_5xx"],
    ]
    for fault in report["faults"]:
        recovered = fault.get("recovered_s")
        extra = ""
        if fault["fault"] == "fail-loads":
            extra = "%s, 404 after %ss, a load then %s, " % (
                "restarted and dropped"
                if fault.get("restarted") and fault.get("dropped")
                else "evicted or unloaded first",
                fault.get("dropped_s"),
                fault.get("load_while_failing"),
            )
        lines.append(
            "fault %-10s %-9s at %5.1fs: %s%s"
            % (
                fault["fault"],
                fault["model"],
                fault["at_s"],
                extra,
                "recovered in %.2fs" % recovered if recovered is not None else "NOT recovered",
            )
        )
    lines += [
        "server               %d evictions, %d restarts, %d loads or restarts failed"
        % (report["evictions"], report["restarts"], report["failed"]),
        "server tree PSS      %.0f MiB before, %.0f MiB at peak, %.0f MiB after unloading all"
        % (report["pss_before_mib"], report["pss_peak_mib"], report["pss_after_mib"]),
        "server exit code     %s" % report["server_exit_code"],
        "result               %s" % ("PASS" if report["passed"] else "FAIL"),
    ]
    return "\n".join(lines)


def cmd_multi_model(args: argparse.Namespace) -> int:
    if args.models < 2 or args.max_models < 1:
        raise ConfigurationError("--models must be at least 2 and --max-models at least 1")
    with tempfile.TemporaryDirectory(prefix="eikit-reliability-mme-") as work:
        log_path = Path(args.log) if args.log else Path(work) / "server.log"
        run = MultiModelRun(args, Path(work), log_path)
        try:
            report = run.execute()
        finally:
            run.stop.set()
            if run.server.process is not None and run.server.process.poll() is None:
                run.server.stop(60)
        if not report["passed"]:
            sys.stderr.write("server log (tail):\n%s\n" % run.server_log()[-6000:])
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["passed"] else 1
