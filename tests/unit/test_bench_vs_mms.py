"""Fast checks of the eikit-against-MMS benchmark's pure parts (bench/vs_mms.py, bench/mms.py):
ratios and goals from the runner's summaries, the table, the round order, the options, and
what the MMS launcher is given. No server, no MMS, no Java."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

pytest.importorskip("torch")  # bench.models builds the models with it

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import mms, vs_mms  # noqa: E402


def _config(rps: float, p99: float, first: float, pss: float) -> Dict[str, Any]:
    cell = {"rps": rps, "rps_rounds": [rps], "p99_ms": p99, "p50_ms": p99 / 3}
    cell["cpu_ms_per_req"] = 1.0
    return {"by_concurrency": {"16": cell}, "first_ok_s": first, "pss_ready_mb": pss}


def _summaries(eikit: Dict[str, Any], mms_row: Dict[str, Any]) -> Dict[str, Any]:
    both = {"configs": {"eikit": eikit, "mms": mms_row}}
    return {"mlp": both, "resnet18": both}


def _by_label(rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    return {row["label"]: row for row in rows}


def test_ratios_are_eikit_over_mms_and_goals_judged_both_ways() -> None:
    summaries = _summaries(_config(3100, 4.0, 1.0, 300), _config(1000, 10.0, 2.5, 600))
    rows = _by_label(vs_mms.compare(summaries, vs_mms.rows(16, 16)))
    rps = rows["MLP req/s, c=16"]
    assert rps["eikit"] == 3100 and rps["mms"] == 1000 and rps["eikit_rounds"] == [3100]
    assert rps["ratio"] == pytest.approx(3.1)
    assert (rps["goal"], rps["verdict"]) == (">= 3", "met")
    assert rows["MLP p99 ms, c=16"]["verdict"] == "met"  # 0.4: at the limit is met
    assert rows["first OK prediction s (MLP)"]["ratio"] == pytest.approx(0.4)
    assert rows["first OK prediction s (MLP)"]["verdict"] == "met"
    pss = rows["PSS MB, ready, 2 workers (MLP)"]
    assert (pss["ratio"], pss["goal"], pss["verdict"]) == (0.5, "<= 0.6", "met")
    assert rows["ResNet-18 JSON req/s, c=16"]["verdict"] == "met"  # 3.1 >= 1.5
    assert rows["MLP p50 ms, c=16"]["verdict"] == ""  # no goal set for it


def test_goals_not_met_and_missing_figures() -> None:
    summaries = _summaries(_config(2000, 5.0, 2.0, 500), _config(1000, 10.0, 2.5, 600))
    rows = _by_label(vs_mms.compare(summaries, vs_mms.rows(16, 16)))
    assert rows["MLP req/s, c=16"]["verdict"] == "not met"  # 2.0 < 3
    assert rows["MLP p99 ms, c=16"]["verdict"] == "not met"  # 0.5 > 0.4
    assert rows["first OK prediction s (MLP)"]["verdict"] == "not met"  # 0.8 > 0.5
    # MMS never started: no ratio, no verdict either way.
    alone = {"mlp": {"configs": {"eikit": _config(2000, 5.0, 2.0, 500)}}}
    rows = _by_label(vs_mms.compare(alone, vs_mms.rows(16, 4)))
    assert rows["MLP req/s, c=16"]["mms"] is None
    assert rows["MLP req/s, c=16"]["ratio"] is None
    assert rows["MLP req/s, c=16"]["verdict"] == "?"
    assert rows["ResNet-18 JSON req/s, c=4"]["eikit"] is None


def test_ratio_refuses_nan_and_zero() -> None:
    assert vs_mms.ratio(1.0, 0.0) is None
    assert vs_mms.ratio(math.nan, 2.0) is None
    assert vs_mms.ratio(1.0, None) is None
    assert vs_mms.ratio(3.0, 2.0) == 1.5


def test_table_is_markdown_with_a_dash_for_what_is_missing() -> None:
    alone = {"mlp": {"configs": {"eikit": _config(2000, 5.0, 2.0, 500)}}}
    text = vs_mms.table(vs_mms.compare(alone, vs_mms.rows(16, 16)))
    lines = text.splitlines()
    assert lines[0].startswith("| figure") and lines[1].startswith("|---")
    assert "| MLP req/s, c=16 | 2,000 | - | - | - | >= 3 | ? |" in lines


def test_each_rounds_ratio_pairs_the_rounds_and_the_table_shows_their_range() -> None:
    eikit, mms_row = _config(3000, 4.0, 1.0, 300), _config(1000, 10.0, 2.5, 600)
    eikit["by_concurrency"]["16"]["rps_rounds"] = [3000, 2000, 4500]
    mms_row["by_concurrency"]["16"]["rps_rounds"] = [1000, 1000, 1500]
    compared = vs_mms.compare(_summaries(eikit, mms_row), vs_mms.rows(16, 16))
    assert _by_label(compared)["MLP req/s, c=16"]["ratio_rounds"] == [3.0, 2.0, 3.0]
    assert "| MLP req/s, c=16 | 3,000 | 1,000 | 3.00 | 2.00–3.00 | >= 3 | met |" in (
        vs_mms.table(compared).splitlines()
    )
    mms_row["by_concurrency"]["16"]["rps_rounds"] = [1000]  # a round failed: no pairs
    compared = vs_mms.compare(_summaries(eikit, mms_row), vs_mms.rows(16, 16))
    assert _by_label(compared)["MLP req/s, c=16"]["ratio_rounds"] == []


def test_summary_keeps_every_rounds_pss() -> None:
    report = vs_mms.runner.Report(
        [vs_mms.runner.Config("mms"), vs_mms.runner.Config("eikit")], {"concurrency": [16]}
    )
    for name, pss in (("eikit", 290.0), ("mms", 550.0), ("eikit", 300.0)):
        report.starts.append(vs_mms.runner.Start(name, 1, 2.0, pss, 4))
    rows = vs_mms.summary(report)["configs"]
    assert rows["eikit"]["pss_ready_mb_rounds"] == [290.0, 300.0]
    assert rows["eikit"]["pss_ready_mb"] == 295.0 and rows["mms"]["pss_ready_mb"] == 550.0


def test_rounds_alternate_starting_with_eikit() -> None:
    assert [vs_mms.order(n) for n in (1, 2, 3)] == [
        ["eikit", "mms"],
        ["mms", "eikit"],
        ["eikit", "mms"],
    ]


@pytest.mark.parametrize(
    "argv", [["--rounds", "0"], ["--duration", "0"], ["--resnet-concurrency", "-1"]]
)
def test_bad_options_are_refused(argv: List[str]) -> None:
    with pytest.raises(SystemExit):
        vs_mms.parse_args(argv)


def test_defaults_are_the_issues_setup() -> None:
    a = vs_mms.parse_args([])
    assert (a.rounds, a.concurrency, a.resnet_concurrency, a.workers) == (3, 16, 16, 2)
    # Long enough for MMS's JIT: a 2 s warm-up measured MMS at two thirds of its speed.
    assert a.warmup >= 30


def test_mms_launcher_runs_sagemaker_inferences_start_with_our_config_path(
    tmp_path: Path,
) -> None:
    compile(mms.LAUNCHER, "<launcher>", "exec")  # valid Python, run with python -c
    assert "start_model_server(handler_service=sys.argv[2])" in mms.LAUNCHER
    venv = tmp_path / "venv"
    server = mms.MmsServed(venv, tmp_path / "base", workers=2)
    python, flag, code, config, handler = server.command
    assert (python, flag, code) == (str(venv / "bin" / "python"), "-c", mms.LAUNCHER)
    assert config == str(tmp_path / "base" / "mms.properties")
    assert handler == "sagemaker_pytorch_serving_container.handler_service"
    env = server.extra_env
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "2" and env["OMP_NUM_THREADS"] == "1"
    assert env["SAGEMAKER_MULTI_MODEL"] == "false"
    assert env["PATH"].startswith(str(venv / "bin"))
    assert Path(env["TMPDIR"]).is_dir() and Path(env["LOG_LOCATION"]).is_dir()
    assert 10000 <= server.pick_port() < 32767  # MMS refuses ports above 32767
