"""eikit advise's sizing and estimates, from a made-up measurement (no server, no AWS)."""

from __future__ import annotations

import io
import json
from typing import Any, Dict, Optional

import numpy as np
import pytest

from eikit.cloud import advise, report
from eikit.cloud.measure import Measurement, Point, batch_body, example_array
from eikit.errors import ConfigurationError

GIB = 1 << 30


def measurement(file_bytes: int, load_peak: int, batch_peak: int) -> Measurement:
    m = Measurement(file_bytes=file_bytes, load_peak_bytes=load_peak, workers=1)
    m.batch_peak_bytes = {1: load_peak, 8: batch_peak}
    m.points = [
        Point(1, 1, 100, 1.0, 10.0, 12.0),
        Point(1, 4, 150, 1.0, 25.0, 40.0),
        Point(8, 1, 50, 1.0, 20.0, 22.0),
        Point(8, 4, 60, 1.0, 60.0, 70.0),
    ]
    return m


def profiles(flops_per_record: float) -> Dict[int, Optional[Dict[str, float]]]:
    return {
        1: {"flops": flops_per_record, "parameter_bytes": 100.0, "forward_ms": 8.0},
        8: {"flops": 8 * flops_per_record, "parameter_bytes": 100.0, "forward_ms": 17.0},
    }


def by_type(result: Dict[str, Any], name: str) -> Dict[str, Any]:
    return next(c for c in result["candidates"] if c["type"] == name)


def test_smallest_ei_that_holds_the_model_with_headroom() -> None:
    # 1.2 GiB of files + 0.1 GiB activation growth, x1.25 = 1.625 GiB: not 1 GB, yes 2 GB
    m = measurement(int(1.2 * GIB), 2 * GIB, int(2.1 * GIB))
    result = advise.analyse(m, profiles(1e9), advise.load_targets())
    assert result["model"]["accelerator_memory_need_bytes"]["source"] == "estimated"
    assert result["model"]["accelerator_memory_need_bytes"]["value"] == pytest.approx(
        1.3 * GIB * 1.25
    )
    assert not by_type(result, "ml.eia1.medium")["fits"]["value"]
    # of the two 2 GB accelerators the cheaper one is named
    assert result["smallest_ei_that_fits"] == "ml.eia2.medium"
    # CPU: 2.1 GiB per worker x 4 workers x 1.25 > 8 GiB; x 2 workers on a 4 GiB type too
    assert by_type(result, "ml.c6i.xlarge")["fits"]["value"] is False
    assert by_type(result, "ml.m5.xlarge")["fits"]["value"] is True


def test_latency_throughput_and_cost_estimates() -> None:
    targets = advise.load_targets()
    result = advise.analyse(measurement(1000, 300 << 20, 300 << 20), profiles(1e12), targets)
    g4dn = by_type(result, "ml.g4dn.xlarge")
    first = g4dn["points"][0]
    # overhead (10 ms p50 - 8 ms forward) + 1e12 / (8.1e12 * 0.3) s
    expected = 2.0 + 1e12 / (8.1e12 * 0.3) * 1000
    assert first["latency_ms"] == {"value": pytest.approx(expected), "source": "estimated"}
    assert first["throughput"]["value"] == pytest.approx(1000 / expected)
    cost = g4dn["cost_per_million"]["batch_1"]["value"]
    assert cost == pytest.approx(0.736 / (1000 / expected * 3600) * 1e6)
    eia = by_type(result, "ml.eia2.medium")
    assert eia["host"] == "ml.m5.large"
    assert eia["price_hour"]["value"] == pytest.approx(0.168 + 0.134)
    assert eia["points"][0]["latency_ms"]["value"] == pytest.approx(
        2.0 + 1e12 / (1e12 * 0.3) * 1000 + 2.0
    )
    # CPU: the measured p50 here, the best measured throughput per worker x busy workers
    c6i = by_type(result, "ml.c6i.xlarge")
    assert c6i["points"][0]["latency_ms"]["value"] == 10.0
    assert c6i["points"][0]["throughput"]["value"] == pytest.approx(150 * 2)
    assert c6i["cost_per_million"]["best_batch"] == 8


def test_every_figure_says_where_it_came_from(tmp_path: Any) -> None:
    result = advise.analyse(
        measurement(1000, 300 << 20, 310 << 20), profiles(1e6), advise.load_targets()
    )

    def walk(node: Any) -> int:
        found = 0
        if isinstance(node, dict):
            if "value" in node:
                assert node.get("source") in ("measured", "estimated", "list price"), node
                found += 1
            found += sum(walk(v) for v in node.values())
        elif isinstance(node, list):
            found += sum(walk(v) for v in node)
        return found

    assert walk(result) > 50
    assert {p["p50_ms"]["source"] for p in result["measured"]} == {"measured"}
    text = report.table(result)
    assert "~ = estimated" in text and "smallest EI accelerator" in text
    report.write_json(result, tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text())["prices"]["as_of"]


def test_no_flop_count_means_no_accelerator_estimate() -> None:
    result = advise.analyse(
        measurement(1000, 300 << 20, 300 << 20), {1: None, 8: None}, advise.load_targets()
    )
    assert by_type(result, "ml.inf1.xlarge")["points"] == []
    assert "no FLOP count" in " ".join(by_type(result, "ml.inf1.xlarge")["notes"])
    assert by_type(result, "ml.c6i.xlarge")["points"]


def test_the_targets_file_is_dated_and_sourced() -> None:
    data = advise.load_targets()
    assert data["as_of"] and "list prices" in data["about"]
    for row in data["ei"] + data["targets"]:
        assert row["price_hour"] > 0 and row["price_source"], row["type"]
    assert [(r["type"], r["f32_tflops"], r["f16_tflops"], r["memory_gb"]) for r in data["ei"]] == [
        ("ml.eia1.medium", 1, 8, 1), ("ml.eia1.large", 2, 16, 2), ("ml.eia1.xlarge", 4, 32, 4),
        ("ml.eia2.medium", 1, 8, 2), ("ml.eia2.large", 2, 16, 4), ("ml.eia2.xlarge", 4, 32, 8),
    ]  # fmt: skip


def test_batches_are_made_from_one_example() -> None:
    body = batch_body(b'{"inputs": [[1, 2, 3, 4]]}', "application/json", 3)
    assert json.loads(body) == {"inputs": [[1, 2, 3, 4]] * 3}
    assert json.loads(batch_body(b"[1.5, 2]", "application/json", 2)) == [[1.5, 2]] * 2
    assert json.loads(batch_body(b"[[1], [2]]", "application/json", 2)) == [[1], [2]][:1] * 2
    out = io.BytesIO()
    np.save(out, np.ones((1, 3, 2), dtype=np.float16))
    tiled = np.load(io.BytesIO(batch_body(out.getvalue(), "application/x-npy", 4)))
    assert tiled.shape == (4, 3, 2) and tiled.dtype == np.float16
    array = example_array(b'{"inputs": [[1, 2, 3, 4]]}', "application/json", 5)
    assert array is not None and array.shape == (5, 4) and array.dtype == np.float32
    assert example_array(b'{"text": "hello"}', "application/json", 2) is None
    with pytest.raises(ConfigurationError, match="JSON"):
        batch_body(b"1,2,3", "text/csv", 2)


def test_neuron_figures_need_a_compile_and_dead_ends_do_not_fit() -> None:
    """advise used to print inf1 figures that an uncompiled model cannot deliver."""
    m = measurement(1000, 300 << 20, 300 << 20)
    result = advise.analyse(m, profiles(1e9), advise.load_targets(), framework="pytorch")
    inf1 = by_type(result, "ml.inf1.xlarge")
    assert any("compiled for inf1 (eikit compile --generation inf1)" in n for n in inf1["notes"])
    assert any("pytorch-1.13-inf1-py310" in n and "frozen" in n for n in inf1["notes"])
    assert "4 NeuronCores: 4 workers, each pinned to one" in inf1["notes"]
    inf2 = by_type(result, "ml.inf2.xlarge")
    assert any("pytorch-2.9-inf2-py312" in n and "supported" in n for n in inf2["notes"])
    section = result["neuron"]
    assert section["checked"] == "2026-12-06"
    assert [t["generation"] for t in section["targets"]] == ["inf1", "inf2"]
    text = report.table(result)
    assert "Inferentia / Trainium for a pytorch model" in text
    assert "deployment guardrails" in text and "read 2026-12-06" in text
    mxnet = advise.analyse(m, profiles(1e9), advise.load_targets(), framework="mxnet")
    dead = by_type(mxnet, "ml.inf2.xlarge")
    assert dead["fits"]["value"] is False
    assert any("dead end: MXNet never ran on NeuronCore v2" in n for n in dead["notes"])
    assert "ml.inf2.xlarge: inf2, NeuronCore v2, DEAD END" in report.table(mxnet)
