"""What ``eikit bench`` prints, writes as JSON and draws as a PNG."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Dict, List, Optional

from eikit import __version__
from eikit.bench import load, runner
from eikit.errors import ConfigurationError


def _fmt(value: Optional[float], spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


COLUMNS = (
    ("req/s", "rps", ",.1f", 10),
    ("p50 ms", "p50_ms", ".2f", 8),
    ("p90 ms", "p90_ms", ".2f", 8),
    ("p99 ms", "p99_ms", ".2f", 8),
    ("CPU ms/req", "cpu_ms_per_req", ".4f", 11),
    ("failed", "failed", "d", 7),
)


def table(report: runner.Report) -> str:
    """One row per config and concurrency (medians over rounds), the ratios to the first
    config, then each config's start and memory."""
    doc = runner.summary(report)
    rows, ratios = doc["configs"], doc["ratios"]
    width = max(len(c.name) for c in report.configs) + 2
    head = "%-*s %5s " % (width, "config", "conc") + " ".join(
        "%*s" % (size, label) for label, _, _, size in COLUMNS
    )
    lines = [head, "-" * len(head)]
    for concurrency in report.plan["concurrency"]:
        for config in report.configs:
            cell = rows[config.name]["by_concurrency"][str(concurrency)]
            cells = " ".join(
                "%*s" % (size, _fmt(cell[key], spec)) for _, key, spec, size in COLUMNS
            )
            lines.append("%-*s %5d %s" % (width, config.name, concurrency, cells))
            ratio = ratios.get(config.name, {}).get("by_concurrency", {}).get(str(concurrency))
            if ratio:
                shown = " ".join(
                    "%*s" % (size, _fmt(ratio.get(key), ".3f") if key in ratio else "")
                    for _, key, _, size in COLUMNS
                )
                base = report.configs[0].name
                lines.append("%-*s %5s %s" % (width, "  ÷ " + base, "", shown))
    for config in report.configs:
        row = rows[config.name]
        if row["first_ok_s_rounds"]:
            lines.append(
                "%s: first good prediction %s s after start (rounds: %s), PSS when ready %s MB"
                % (
                    config.name,
                    _fmt(row["first_ok_s"], ".2f"),
                    ", ".join(_fmt(value, ".2f") for value in row["first_ok_s_rounds"]),
                    _fmt(row["pss_ready_mb"], ".0f"),
                )
            )
    busy = max(
        (
            cell["busiest_other_cores"]
            for row in rows.values()
            for cell in row["by_concurrency"].values()
        ),
        default=0.0,
    )
    if busy > 0.2:
        lines.append(
            "NOISY: other processes used up to %.2f cores during a point; CPU per request holds "
            "up better than req/s and latency" % busy
        )
    if report.plan["rounds"] > 1:
        lines.append("medians of %d rounds; every round is in the JSON" % report.plan["rounds"])
    return "\n".join(lines)


def facts(engine: str) -> Dict[str, Any]:
    wrk = load.find_wrk()
    return {
        "eikit": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_engine": engine,
        "wrk": load.wrk_version(wrk) if wrk and engine != "python" else None,
    }


def write_json(report: runner.Report, path: Path, extra: Dict[str, Any]) -> None:
    doc = report.as_dict()
    doc.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def write_plot(report: runner.Report, path: Path) -> None:
    """req/s and p50/p99 against concurrency, a line per config."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigurationError(
            "the plot needs matplotlib: pip install 'eikit[advise]' (or leave out --plot)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = runner.summary(report)["configs"]
    concurrency: List[int] = list(report.plan["concurrency"])
    fig, (rate, latency) = plt.subplots(1, 2, figsize=(12, 5))
    for config in report.configs:
        cells = [doc[config.name]["by_concurrency"][str(c)] for c in concurrency]
        rate.plot(concurrency, [cell["rps"] for cell in cells], "-o", label=config.name)
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            latency.plot(
                concurrency,
                [cell[key] for cell in cells],
                style,
                label="%s %s" % (config.name, key[:3]),
            )
    for axes, label in ((rate, "requests/s"), (latency, "latency, ms (client)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(concurrency)
        axes.set_xticklabels([str(c) for c in concurrency])
        axes.set_xlabel("concurrent clients")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    rate.set_title("Throughput (median of %d round(s))" % report.plan["rounds"])
    latency.set_title("Latency: p50 solid, p99 dashed")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
