"""``eikit bench`` and ``scripts/bench-compare`` on real servers, with runs of a second or
two: what they measure, write and compare, never how fast anything is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parents[2]
BODY = "[[1.0, 2.0, 3.0, 4.0]]"
SHORT = ["--duration", "1", "--warmup", "0.2", "--engine", "python", "--threads", "1"]


def bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eikit", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_sweep_of_a_model_folder_writes_json_and_a_plot(tree, tmp_path: Path) -> None:
    out, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    done = bench(
        str(tree.model_dir), "--json", BODY, "--concurrency", "1,3", "--out", str(out),
        "--plot", str(plot), *SHORT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    points: List[Dict[str, Any]] = doc["points"]
    assert [p["concurrency"] for p in points] == [1, 3]
    for point in points:
        assert point["load"]["requests"] > 0 and point["load"]["failed"] == 0
        assert point["load"]["statuses"] == {"200": point["load"]["requests"]}
        assert point["cpu_ms_per_req"] > 0 and point["pss_mb"] > 0
        assert point["load"]["p50_ms"] <= point["load"]["p90_ms"] <= point["load"]["p99_ms"]
    (start,) = doc["starts"]
    assert start["first_ok_s"] > 0 and start["processes"] >= 2  # frontend and a worker
    assert doc["machine"]["load_engine"] == "python"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "req/s" in done.stdout and "first good prediction" in done.stdout


def test_two_configurations_run_in_alternating_rounds(tree, tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    done = bench(
        str(tree.model_dir), "--json", BODY, "--concurrency", "2", "--rounds", "2",
        "--b", "EIKIT_METRICS=false", "--out", str(out), *SHORT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    order = [(p["config"], p["round"]) for p in doc["points"]]
    assert order == [("A", 1), ("B", 1), ("B", 2), ("A", 2)]
    configs = {c["name"]: c for c in doc["configs"]}
    assert configs["B"]["env"]["EIKIT_METRICS"] == "false"
    assert "EIKIT_METRICS" not in configs["A"]["env"]
    ratio = doc["summary"]["ratios"]["B"]["by_concurrency"]["2"]
    assert ratio["rps"] > 0 and ratio["cpu_ms_per_req"] > 0
    assert "÷ A" in done.stdout


def test_a_running_endpoint_is_loaded_without_process_figures(tree, start, tmp_path) -> None:
    endpoint = start(tree)
    out = tmp_path / "url.json"
    done = bench(endpoint.url, "--json", BODY, "--concurrency", "2", "--out", str(out), *SHORT)
    assert done.returncode == 0, done.stderr
    (point,) = json.loads(out.read_text())["points"]
    assert point["load"]["requests"] > 0 and point["cpu_ms_per_req"] is None


def test_failed_requests_are_counted_and_make_the_run_fail(tree, start, tmp_path) -> None:
    # a model folder it serves itself: the first answer says what is wrong, at once
    done = bench(str(tree.model_dir), "--json", "[[1, 2]]", "--concurrency", "1", *SHORT)
    assert done.returncode == 2 and "HTTP 400" in done.stderr, done.stderr
    # a running endpoint: every answer is counted
    endpoint = start(tree)
    out = tmp_path / "bad.json"
    done = bench(
        endpoint.url, "--json", "[[1, 2]]", "--concurrency", "1", "--out", str(out), *SHORT
    )
    assert done.returncode == 1
    (point,) = json.loads(out.read_text())["points"]
    assert point["load"]["failed"] == point["load"]["requests"] > 0
    assert point["load"]["first_failure"].startswith("HTTP 400")


def test_mistakes_are_explained(tree) -> None:
    done = bench("http://127.0.0.1:9", "--json", BODY, "--b", "X=1")
    assert done.returncode == 2 and "--b-url" in done.stderr
    done = bench(str(tree.model_dir), "--json", BODY, "--b", "novalue")
    assert done.returncode == 2 and "NAME=VALUE" in done.stderr
    done = bench(str(tree.base / "nowhere"), "--json", BODY)
    assert done.returncode == 2 and "neither a model folder nor a URL" in done.stderr


@pytest.mark.slow
def test_bench_compare_installs_a_ref_and_compares_in_rounds(tmp_path: Path) -> None:
    """HEAD against the working tree: a REF environment is made, both serve, the ratios
    and every round are printed."""
    done = subprocess.run(
        [str(REPO / "scripts" / "bench-compare"), "HEAD", "--rounds", "2", "--duration", "1",
         "--warmup", "0.2", "--engine", "python", "--envs", str(tmp_path / "envs"),
         "--out", str(tmp_path / "compare.json")],
        capture_output=True, text=True, timeout=1500, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REF = HEAD" in done.stdout and "tree÷REF" in done.stdout
    assert "first OK prediction s" in done.stdout and "per-round tree÷REF" in done.stdout
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert [(p["config"], p["round"]) for p in doc["points"]] == [
        ("REF", 1), ("tree", 1), ("tree", 2), ("REF", 2),
    ]  # fmt: skip
    for config in doc["configs"]:  # both installed alike, in their own environments
        serve = config["command"][0]
        assert serve.startswith(str(tmp_path / "envs")) and Path(serve).exists()
