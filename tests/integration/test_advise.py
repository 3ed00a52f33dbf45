"""eikit advise on the sample model: a real server on loopback, a real chart."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("sample")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample" / "make_model.py"), str(dest)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return dest


def advise(sample: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "eikit",
            "advise",
            "--model-dir",
            str(sample / "model"),
            "--code-dir",
            str(sample / "code"),
            "--batch-sizes",
            "1,8",
            "--concurrency",
            "1,2",
            "--duration",
            "0.4",
            "--out",
            str(out),
            *extra,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.endswith(b"IEND\xaeB`\x82")
    return width, height


def test_advise_measures_the_sample_model_and_draws_its_chart(sample: Path, tmp_path: Path) -> None:
    done = advise(sample, tmp_path / "out", "--json", EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    report: Any = json.loads((tmp_path / "out" / "advise.json").read_text())
    model = report["model"]
    assert model["file_bytes"]["source"] == "measured" and model["file_bytes"]["value"] > 0
    # 4 -> 16 -> 3: 2 * (4*16 + 16*3) multiply-adds per flower, counted by torch
    assert model["flops_per_inference"] == {"value": 224.0, "source": "measured"}
    assert model["parameter_bytes"]["value"] == 4 * (4 * 16 + 16 + 16 * 3 + 3)
    points = report["measured"]
    assert [(p["batch"], p["concurrency"]) for p in points] == [(1, 1), (1, 2), (8, 1), (8, 2)]
    for point in points:
        assert point["requests"] > 0
        assert point["p50_ms"]["value"] > 0 and point["p50_ms"]["source"] == "measured"
        assert point["throughput"]["value"] > 0
        assert point["peak_rss_bytes"]["value"] > 10 << 20  # a worker holding torch
    assert report["smallest_ei_that_fits"] == "ml.eia1.medium"
    kinds = {c["kind"] for c in report["candidates"]}
    assert kinds == {"eia", "neuron", "gpu", "cpu"}
    for candidate in report["candidates"]:
        assert candidate["points"], candidate["type"]
        assert candidate["cost_per_million"]["best"]["source"] == "estimated"
    assert "~ = estimated" in done.stdout and "measured on this machine" in done.stdout
    width, height = png_size(tmp_path / "out" / "advise.png")
    assert width >= 800 and height >= 400


def test_advise_reports_an_example_the_model_rejects(sample: Path, tmp_path: Path) -> None:
    done = advise(sample, tmp_path / "out", "--json", '{"inputs": [[1.0, 2.0]]}', "--no-chart")
    assert done.returncode == 2
    assert "the model server answered the example with HTTP" in done.stderr
    assert not (tmp_path / "out" / "advise.json").exists()
