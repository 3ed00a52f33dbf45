"""``eikit advise`` output: a text table, the JSON report and a PNG chart.

Estimated figures are marked ``~`` in the table, drawn hollow and dashed in the chart, and
carry ``"source": "estimated"`` in the JSON; measured ones are plain, solid, ``measured``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

MIB = float(1 << 20)


def _num(value: Optional[float], digits: int = 1) -> str:
    """Three significant figures or so; thousands separated."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return "%.0f" % value
    if abs(value) >= 10:
        return "%.1f" % value
    if abs(value) >= 1:
        return "%.2f" % value
    return "%.3f" % value


def _shown(figure: Optional[Dict[str, Any]], digits: int = 1) -> str:
    if not figure or figure.get("value") is None:
        return "-"
    text = _num(float(figure["value"]), digits)
    return ("~" + text) if figure.get("source") == "estimated" else text


def _money(value: Optional[float]) -> str:
    """Dollars: cents for large sums, two significant figures for fractions of a cent."""
    if value is None:
        return "-"
    if value >= 10:
        return "$%.2f" % value
    if value >= 0.01:
        return "$%.3f" % value
    if value <= 0:
        return "$0"
    decimals = 1 - int(math.floor(math.log10(value)))
    return "$%.*f" % (decimals, value)


def table(report: Dict[str, Any]) -> str:
    m = report["model"]
    lines: List[str] = []
    mach = report["machine"]
    need = m["accelerator_memory_need_bytes"]["value"]
    lines.append(
        "model: %s KiB of files, %s parameter bytes, %s FLOPs per inference, peak RSS %s MiB "
        "after loading (measured); accelerator memory need ~%.3f GiB (estimated: model bytes "
        "+ activation growth, x%s headroom)"
        % (
            _num(m["file_bytes"]["value"] / 1024.0),
            _num(m["parameter_bytes"]["value"]) if m["parameter_bytes"]["value"] else "-",
            _num(m["flops_per_inference"]["value"]) if m["flops_per_inference"]["value"] else "-",
            _num((m["load_peak_rss_bytes"]["value"] or 0) / MIB),
            need / float(1 << 30),
            report["assumptions"]["headroom"],
        )
    )
    lines.append("")
    lines.append(
        "measured on this machine (%d CPUs, %s; %d worker, 1 thread, eikit server on loopback):"
        % (mach["cpus"] or 0, mach["accelerator"], mach["workers"])
    )
    lines.append(
        "%6s %5s %9s %9s %13s %10s"
        % ("batch", "conc", "p50 ms", "p99 ms", "inferences/s", "peak RSS")
    )
    for p in report["measured"]:
        rss = p["peak_rss_bytes"]["value"]
        lines.append(
            "%6d %5d %9s %9s %13s %10s"
            % (
                p["batch"],
                p["concurrency"],
                _shown(p["p50_ms"], 2),
                _shown(p["p99_ms"], 2),
                _shown(p["throughput"]),
                ("%.0f MiB" % (rss / MIB)) if rss else "-",
            )
        )
    lines.append("")
    lines.append(
        "candidates (~ = estimated; prices are %s list prices as of %s: check them):"
        % (report["prices"].get("region"), report["prices"]["as_of"])
    )
    lines.append(
        "%-28s %-6s %-5s %10s %12s %18s %8s %11s %11s"
        % (
            "type",
            "kind",
            "fits",
            "p50 ms b=1",
            "inf/s b=1",
            "best inf/s (b)",
            "$/hour",
            "$/1M b=1",
            "$/1M best",
        )
    )
    for c in report["candidates"]:
        first = c["points"][0] if c["points"] else None
        best_batch = c["cost_per_million"]["best_batch"]
        best = next((p for p in c["points"] if p["batch"] == best_batch), None)
        name = c["type"] + ("+" + c["host"].replace("ml.", "") if c.get("host") else "")
        fits = c["fits"]["value"]
        lines.append(
            "%-28s %-6s %-5s %10s %12s %18s %8s %11s %11s"
            % (
                name,
                c["kind"],
                "?" if fits is None else ("~yes" if fits else "~no"),
                _shown(first["latency_ms"], 2) if first else "-",
                _shown(first["throughput"]) if first else "-",
                ("%s (%d)" % (_shown(best["throughput"]), best_batch)) if best else "-",
                _money(c["price_hour"]["value"]),
                ("~" + _money(c["cost_per_million"]["batch_1"]["value"]))
                if c["cost_per_million"]["batch_1"]["value"] is not None
                else "-",
                ("~" + _money(c["cost_per_million"]["best"]["value"]))
                if c["cost_per_million"]["best"]["value"] is not None
                else "-",
            )
        )
    lines.append("")
    lines.extend(neuron_lines(report))
    if report.get("smallest_ei_that_fits"):
        lines.append(
            "smallest EI accelerator that holds the model with headroom: %s"
            % report["smallest_ei_that_fits"]
        )
    if report.get("cheapest_fit"):
        lines.append(
            "lowest estimated cost per million inferences among non-EI targets that fit: %s "
            "(an estimate: load-test the top few on SageMaker before moving)"
            % report["cheapest_fit"]
        )
        chosen = next(c for c in report["candidates"] if c["type"] == report["cheapest_fit"])
        for note in chosen["notes"]:
            lines.append("  %s: %s" % (chosen["type"], note))
    return "\n".join(lines) + "\n"


def neuron_lines(report: Dict[str, Any]) -> List[str]:
    """Inferentia/Trainium: per target, its state, what it needs, and the dated sources."""
    section = report.get("neuron") or {}
    targets = section.get("targets") or []
    if not targets:
        return []
    lines = [
        "Inferentia / Trainium for a %s model (AWS's Neuron facts as read %s):"
        % (report.get("framework", "?"), section.get("checked"))
    ]
    for advice in targets:
        head = "  %s: %s, NeuronCore %s, %s" % (
            advice["instance_type"],
            advice["generation"],
            advice["neuron_core"],
            "DEAD END" if advice["dead_end"] else advice["state"],
        )
        lines.append(head)
        if advice["dead_end"]:
            lines.append("    " + advice["dead_end"])
            continue
        for need in advice["needs"]:
            lines.append("    - " + need)
        for extra in (advice["caution"], advice["guardrails"]):
            if extra:
                lines.append("    ! " + extra)
    lines.append("")
    return lines


def write_json(report: Dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")


def write_chart(report: Dict[str, Any], path: Path) -> None:
    """Latency versus throughput per candidate (and as measured here); cost per million."""
    try:
        import matplotlib
    except ImportError:
        from eikit.errors import ConfigurationError

        raise ConfigurationError(
            "the chart needs matplotlib: pip install 'eikit[advise]' (or pass --no-chart)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6.5))
    # as the estimates are drawn: p50 at the lowest concurrency, the best throughput
    batches = sorted({p["batch"] for p in report["measured"]})
    xs, ys = [], []
    for b in batches:
        rows = [p for p in report["measured"] if p["batch"] == b]
        xs.append(max(p["throughput"]["value"] for p in rows))
        ys.append(min(rows, key=lambda p: p["concurrency"])["p50_ms"]["value"])
    left.plot(xs, ys, "-o", color="black", linewidth=2, zorder=5, label="this machine (measured)")
    for b, x, y in zip(batches, xs, ys):
        left.annotate("b=%d" % b, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    shown = [c for c in report["candidates"] if c["points"]]
    colours = plt.get_cmap("tab20")
    for i, c in enumerate(shown):
        left.plot(
            [p["throughput"]["value"] for p in c["points"]],
            [p["latency_ms"]["value"] for p in c["points"]],
            "--o",
            markerfacecolor="none",
            color=colours(i % 20),
            label="%s (estimated)" % c["type"],
        )
    left.set_xscale("log")
    left.set_yscale("log")
    left.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    left.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    left.set_xlabel("throughput, inferences/s (batch sizes along each line)")
    left.set_ylabel("p50 latency per request, ms")
    left.set_title("Latency vs throughput: solid = measured, dashed = estimated")
    left.legend(fontsize=7, loc="best")
    left.grid(True, which="both", alpha=0.3)

    costed = [c for c in report["candidates"] if c["cost_per_million"]["best"]["value"]]
    costed.sort(key=lambda c: c["cost_per_million"]["best"]["value"])
    names = [
        "%s%s%s"
        % (
            c["type"],
            "+" + c["host"].replace("ml.", "") if c.get("host") else "",
            "" if c["fits"]["value"] is not False else " (does not fit)",
        )
        for c in costed
    ]
    values = [c["cost_per_million"]["best"]["value"] for c in costed]
    bars = right.barh(
        range(len(costed)),
        values,
        color=[colours(shown.index(c) % 20) if c in shown else "grey" for c in costed],
        hatch="//",
        edgecolor="black",
    )
    right.set_yticks(range(len(costed)))
    right.set_yticklabels(names, fontsize=8)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("USD per million inferences (estimated, at the best batch size)")
    right.set_title(
        "Cost per million inferences (estimated; list prices as of %s)" % report["prices"]["as_of"]
    )
    for bar, value in zip(bars, values):
        right.annotate(
            _money(value),
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    fig.suptitle(
        "eikit advise: hatched bars and dashed lines are estimates; "
        "the black line was measured here"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
