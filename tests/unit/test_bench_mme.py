"""Fast checks of the multi-model benchmark's pure parts (bench/mme.py): percentiles, the
SageMaker-style client (404 -> load -> invoke again, client-side LRU unloads), summaries and
the report. No server, no MMS, no torch: the client talks to a fake endpoint."""

from __future__ import annotations

import json
import math
import random
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import mme, mms  # noqa: E402


class FakeEndpoint:
    """A multi-model endpoint in memory: loads, invokes, unloads; with ``cap`` it evicts the
    least recently used model itself (as eikit does), without it it holds any number (as
    MMS does). Answers each model's name, so a client's check can tell them apart."""

    def __init__(self, cap: Optional[int] = None) -> None:
        self.cap = cap
        self.loaded: OrderedDict[str, None] = OrderedDict()
        self.evicted = 0
        self.calls: List[Tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(
        self, method: str, path: str, body: Optional[bytes], headers: Dict[str, str]
    ) -> Tuple[int, bytes]:
        with self.lock:
            self.calls.append((method, path))
            if method == "POST" and path == "/models":
                name = json.loads(body or b"{}")["model_name"]
                if name in self.loaded:
                    return 409, b'{"code": 409}'
                if self.cap is not None and len(self.loaded) >= self.cap:
                    self.loaded.popitem(last=False)
                    self.evicted += 1
                self.loaded[name] = None
                return 200, b'{"status": "loaded"}'
            name = path[len("/models/") :]
            if method == "POST" and name.endswith("/invoke"):
                name = name[: -len("/invoke")]
                if name not in self.loaded:
                    return 404, b'{"code": 404}'
                self.loaded.move_to_end(name)
                return 200, json.dumps(name).encode()
            if method == "DELETE":
                if self.loaded.pop(name, 0) is None:
                    return 200, b"{}"
                return 404, b"{}"
        return 405, b""


URLS = {"m%d" % i: "/models/m%d" % i for i in range(6)}


def check(name: str, got: bytes) -> str:
    return "ok" if json.loads(got) == name else "answer of %s" % got.decode()


def test_percentiles_and_summary() -> None:
    ns = [i * 1_000_000 for i in range(1, 101)]  # 1..100 ms
    random.Random(1).shuffle(ns)
    s = mme.summary_ms(ns)
    assert s == {"n": 100, "p50_ms": 50.0, "p99_ms": 99.0}
    one = mme.summary_ms([3_000_000])
    assert one["p50_ms"] == one["p99_ms"] == 3.0
    empty = mme.summary_ms([])
    assert empty["n"] == 0 and math.isnan(empty["p50_ms"])


def test_hot_invoke_is_one_call() -> None:
    endpoint = FakeEndpoint()
    client = mme.SageMakerClient(endpoint, URLS, b"[[1]]", check=check)
    assert client.load("m1") == 200
    call = client.invoke("m1")
    assert call["status"] == 200 and call["kind"] == "hot" and call["load_ns"] == 0
    assert endpoint.calls == [("POST", "/models"), ("POST", "/models/m1/invoke")]
    assert client.wrong == []


def test_cold_invoke_loads_then_invokes_again() -> None:
    endpoint = FakeEndpoint()
    client = mme.SageMakerClient(endpoint, URLS, b"[[1]]", check=check)
    call = client.invoke("m2")
    assert call["status"] == 200 and call["kind"] == "cold"
    assert 0 < call["load_ns"] <= call["ns"]
    assert endpoint.calls == [
        ("POST", "/models/m2/invoke"),
        ("POST", "/models"),
        ("POST", "/models/m2/invoke"),
    ]
    assert client.statuses == {"invoke 404": 1, "load 200": 1, "invoke 200": 1}
    assert client.loads == 1 and len(client.load_ns) == 1
    assert mme.bad_statuses(client.statuses) == {}


def test_names_are_quoted_in_paths() -> None:
    endpoint = FakeEndpoint()
    client = mme.SageMakerClient(endpoint, {"a/b c": "/x"}, b"[]")
    assert client.invoke("a/b c")["status"] == 404  # fake does not decode: stays unknown
    assert ("POST", "/models/a%2Fb%20c/invoke") in endpoint.calls


def test_server_side_eviction_is_counted_by_loads_minus_listed() -> None:
    endpoint = FakeEndpoint(cap=2)
    client = mme.SageMakerClient(endpoint, URLS, b"[]", check=check)
    for name in ["m0", "m1", "m2", "m0", "m3"]:
        assert client.invoke(name)["status"] == 200
    # m0 loaded, m1, m2 (evicts m0), m0 again (evicts m1), m3 (evicts m2)
    assert endpoint.evicted == 3
    assert client.loads - len(endpoint.loaded) == 3
    assert client.client_evictions == 0  # the server made room, the client never unloaded


def test_client_side_lru_unloads_least_recently_used_first() -> None:
    endpoint = FakeEndpoint()  # holds anything: the client keeps it at 2 (MMS)
    client = mme.SageMakerClient(endpoint, URLS, b"[]", check=check, evict_at=2)
    client.invoke("m0")
    client.invoke("m1")
    client.invoke("m0")  # m1 is now the least recently used
    client.invoke("m2")
    assert ("DELETE", "/models/m1") in endpoint.calls
    assert list(endpoint.loaded) == ["m0", "m2"]
    assert client.client_evictions == 1
    assert list(client.loaded) == ["m0", "m2"]


def test_client_never_unloads_a_model_in_use() -> None:
    client = mme.SageMakerClient(FakeEndpoint(), URLS, b"[]", evict_at=2)
    client.loaded.update({"m0": None, "m1": None})
    client.in_use["m0"] = 1
    with client.lock:
        assert client._victim() == "m1"
    client.in_use["m1"] = 1
    with client.lock:
        assert client._victim() is None


def test_concurrent_misses_of_one_model_load_it_once() -> None:
    gate = threading.Event()
    endpoint = FakeEndpoint()

    def slow(
        method: str, path: str, body: Optional[bytes], headers: Dict[str, str]
    ) -> Tuple[int, bytes]:
        if method == "POST" and path == "/models":
            gate.wait(5)  # hold the first load until every client has missed
        return endpoint(method, path, body, headers)

    client = mme.SageMakerClient(slow, URLS, b"[]", check=check)
    results: List[dict] = []
    threads = [threading.Thread(target=lambda: results.append(client.invoke("m4"))) for _ in "abc"]
    for thread in threads:
        thread.start()

    def misses() -> int:
        return endpoint.calls.count(("POST", "/models/m4/invoke"))

    deadline = threading.Event()
    for _ in range(500):
        if misses() == 3:
            break
        deadline.wait(0.01)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert [r["status"] for r in results] == [200, 200, 200]
    assert endpoint.calls.count(("POST", "/models")) == 1
    assert client.statuses["load 409"] == 0


def test_wrong_answers_and_errors_are_reported() -> None:
    endpoint = FakeEndpoint()
    client = mme.SageMakerClient(endpoint, URLS, b"[]", check=lambda n, g: "values differ")
    client.invoke("m1")
    assert client.wrong == ["m1: values differ"]

    def broken(
        method: str, path: str, body: Optional[bytes], headers: Dict[str, str]
    ) -> Tuple[int, bytes]:
        if path == "/models":
            return 507, b"{}"
        if method == "DELETE":
            raise ConnectionResetError("reset")
        return 404, b"{}"

    failing = mme.SageMakerClient(broken, URLS, b"[]", evict_at=1, attempts=2)
    failing.loaded["m0"] = None
    call = failing.invoke("m1")
    assert call["status"] == 404  # gave up after the attempts
    assert mme.bad_statuses(failing.statuses) == {"load 507": 1, "unload 0": 1}
    assert "m1" not in failing.loaded


def test_spread_uses_every_client_and_summarises() -> None:
    endpoint = FakeEndpoint()  # evicts nothing: a model cannot vanish between load and invoke
    client = mme.SageMakerClient(endpoint, URLS, b"[]", check=check)
    seen: List[int] = []
    run = mme.spread(client, sorted(URLS), 0.2, 3, seed=1, progress=lambda c, t: seen.append(1))
    summary = mme.spread_summary(run["calls"], run["wall_s"])
    assert summary["ok"] == summary["requests"] > 0
    assert summary["rps"] > 0 and 0 < summary["cold_share"] <= 1
    assert summary["hot"]["n"] + summary["cold"]["n"] == summary["ok"]
    assert summary["failed"] == {}
    assert client.wrong == []


def test_metric_value() -> None:
    text = (
        "# HELP eikit_models_evicted Models unloaded to make room\n"
        "# TYPE eikit_models_evicted gauge\n"
        "eikit_models_evicted 31\n"
        'eikit_models_evicted_total{x="1"} 2\n'
        "eikit_models_loaded 20.0\n"
    )
    assert mme.metric_value(text, "eikit_models_evicted") == 31.0
    assert mme.metric_value(text, "eikit_models_loaded") == 20.0
    assert mme.metric_value(text, "eikit_nothing") is None


def test_memory_cap_mb() -> None:
    assert mme.memory_cap_mb(100 * mme.MIB, 20) == 2050  # holds 20, not 21
    assert mme.memory_cap_mb(None, 20) is None


def test_low_free_port_is_below_mms_limit() -> None:
    port = mms.low_free_port(random.Random(3))
    assert 10000 <= port < 32767


def test_report_rows_ratios_and_errors() -> None:
    eikit = {
        "load": {"p50_ms": 1000.0, "p99_ms": 2000.0},
        "spread": {"rps": 6.0, "cold_share": 0.6, "hot": {"p50_ms": 2.0}},
        "evictions_server": 30.0,
        "evictions_client": 30,
        "memory": {"per_model_pss_mib": 100.0},
        "errors_total": 0,
    }
    mms_ = {
        "load": {"p50_ms": 2000.0, "p99_ms": 0.0},
        "spread": {"rps": 3.0, "cold_share": 0.6, "hot": {"p50_ms": 4.0}},
        "evictions_client": 30,
        "memory": {"per_model_pss_mib": 200.0},
        "errors_total": 2,
        "bad_statuses": {"invoke 503": 2},
    }
    text = mme.format_report({"eikit": eikit, "mms": mms_})
    lines = {line[:31].strip(): line[31:].split() for line in text.splitlines()[2:]}
    assert text.splitlines()[0].split() == ["eikit", "mms", "eikit/MMS"]
    assert lines["load p50 ms"] == ["1000.0", "2000.0", "0.50"]
    assert lines["load p99 ms"] == ["2000.0", "0.0", "-"]  # no ratio over zero
    assert lines["spread req/s"] == ["6.0", "3.0", "2.00"]
    assert lines["evictions (server metric)"] == ["30", "-", "-"]
    assert lines["PSS per loaded model MiB"] == ["100.0", "200.0", "0.50"]
    assert lines["hot invoke p50 ms (c=1)"] == ["-", "-", "-"]
    assert "mms: ERRORS {'invoke 503': 2}" in text

    alone = mme.format_report({"eikit": eikit})
    assert "eikit/MMS" not in alone and "FAILED" not in alone
    failed = mme.format_report({"mms": {"error": "setup: no java"}})
    assert "mms: FAILED: setup: no java" in failed


@pytest.mark.parametrize(
    "argv",
    [["--cap", "50"], ["--cap", "0"], ["--concurrency", "20"], ["--no-mms", "--no-eikit"]],
)
def test_bad_options_are_refused(argv: List[str]) -> None:
    with pytest.raises(SystemExit):
        mme.parse_args(argv)


def test_defaults() -> None:
    a = mme.parse_args([])
    assert (a.models, a.cap, a.duration, a.concurrency) == (50, 20, 30.0, 4)


def test_invoke_during_another_clients_load_is_joined_not_hot() -> None:
    endpoint = FakeEndpoint()
    client = mme.SageMakerClient(endpoint, URLS, b"[]", check=check)
    client.load("m1")
    client.pending["m1"] = 1  # another client's load of m1 is in flight (eikit holds us)
    assert client.invoke("m1")["kind"] == "joined"
    client.pending["m1"] = 0
    assert client.invoke("m1")["kind"] == "hot"
    summary = mme.spread_summary(
        [
            {"kind": "joined", "ns": 5, "load_ns": 0, "status": 200},
            {"kind": "hot", "ns": 1, "load_ns": 0, "status": 200},
        ],
        1.0,
    )
    assert summary["joined"]["n"] == 1 and summary["hot"]["n"] == 1
    assert summary["cold_share"] == 0


def test_tree_cpu_keeps_processes_that_are_gone() -> None:
    import os
    import subprocess
    import time

    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.process_time()\n"
         "while time.process_time() - t < 0.3: pass\ntime.sleep(30)"]
    )  # fmt: skip
    try:
        with mme.TreeCpu(os.getpid(), interval=0.05) as cpu:
            deadline = time.monotonic() + 10
            while cpu.total() < 0.25 and time.monotonic() < deadline:
                time.sleep(0.05)
            child.kill()
            child.wait()
            seen = cpu.sample()
        assert seen >= 0.25  # the child's CPU stays counted after it is gone
        assert cpu.total() == seen
    finally:
        child.kill()
