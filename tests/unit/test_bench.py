"""Fast checks of the benchmark's pure parts: wrk parsing, report formatting, model shapes."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import inprocess, models, run  # noqa: E402

# ------------------------------------------------------------------------------- reporting


def _rows() -> list:
    ip = {"rps": 20000.0, "p50_ms": 0.05, "p99_ms": 0.1, "cpu_ms_per_req": 0.045}
    srv = {
        "rps": 7000.0,
        "p50_ms": 2.2,
        "p99_ms": 7.5,
        "server_cpu_ms_per_req": 0.25,
        "other_cores": 0.05,
        "errors": {},
        "failed": 0,
    }
    return [
        {"model": "mlp", "concurrency": 16, "server": srv, "inprocess": ip, "ratio": 0.35},
        {
            "model": "resnet18",
            "concurrency": 16,
            "server": None,
            "inprocess": {"rps": 43.0, "p50_ms": 46.0, "p99_ms": 50.0},
            "ratio": None,
            "error": "server failed (see JSON/log)",
        },
    ]


def test_format_table() -> None:
    table = run.format_table(_rows())
    lines = table.splitlines()
    assert "server req/s" in lines[0] and "in-proc req/s" in lines[0] and "ratio" in lines[0]
    assert set(lines[1]) == {"-"}
    mlp = lines[2].split()
    assert mlp[:5] == ["mlp", "16", "7,000.0", "20,000.0", "0.350"]
    assert mlp[5:12] == ["2.20", "7.50", "0.050", "0.250", "0.045", "0.05", "0"]
    rn = lines[3]
    assert rn.split()[:5] == ["resnet18", "16", "-", "43.0", "-"]
    assert "server failed" in rn


def test_target_lines() -> None:
    lines = run.target_lines(_rows())
    assert len(lines) == 1 and "MET" in lines[0] and "NOT MET" not in lines[0]
    rows = _rows()
    rows[1].update(server={"rps": 40.0}, ratio=40.0 / 43.0, error=None)
    lines = run.target_lines(rows)
    assert any(ln.startswith("resnet18 c=16") and "NOT MET" in ln for ln in lines)
    rows[1].update(concurrency=1)  # one request at a time uses one worker: no target
    assert not any(ln.startswith("resnet18") for ln in run.target_lines(rows))


def test_rows_of_ratio_and_errors() -> None:
    pt = {"concurrency": 4, "rps": 50.0, "failed": 1}
    res = [{"model": "m", "inprocess": {"rps": 100.0}, "points": [pt], "server": {}}]
    rows = run.rows_of(res, [1, 4])
    assert rows[0]["server"] is None and rows[0]["ratio"] is None
    assert rows[1]["ratio"] == pytest.approx(0.5)
    assert "errors" in rows[1]["error"]


def test_parse_args() -> None:
    a = run.parse_args(["--models", "mlp", "--concurrency", "2,8", "--duration", "3"])
    assert a.models == ["mlp"] and a.concurrency == [2, 8] and a.duration == 3
    with pytest.raises(ValueError):
        run.parse_args(["--models", "vgg"])


def test_check_prediction() -> None:
    spec = models.get("mlp")
    want = json.dumps([[0.5] * 10]).encode()
    assert run.check_prediction(want, want, spec) == "ok"
    assert "shape" in run.check_prediction(b"[[1, 2]]", want, spec)
    assert "differ" in run.check_prediction(json.dumps([[0.6] * 10]).encode(), want, spec)
    assert "not JSON" in run.check_prediction(b"<html>", want, spec)


# ---------------------------------------------------------------------- models and bodies


def test_mlp_shape_and_size() -> None:
    m = models.MLP().eval()
    assert models.param_count(m) == 64 * 256 + 256 + 256 * 10 + 10
    with torch.inference_mode():
        assert tuple(m(torch.zeros(1, 64)).shape) == models.get("mlp").output_shape


def test_resnet18_matches_torchvision_size_and_shapes() -> None:
    m = models.ResNet18().eval()
    assert models.param_count(m) == 11_689_512
    with torch.inference_mode():
        # Small spatial size keeps the test fast; the head is size-independent.
        assert tuple(m(torch.zeros(1, 3, 64, 64)).shape) == (1, 1000)


def test_request_bodies_decode_to_input_shape() -> None:
    mlp, rn = models.get("mlp"), models.get("resnet18")
    x = inprocess.decode(models.request_body(mlp), mlp.content_type)
    assert x.shape == (1, 64) and x.dtype == np.float32
    y = inprocess.decode(models.request_body(rn), rn.content_type)
    assert y.shape == (1, 3, 224, 224) and y.dtype == np.float32
    assert models.request_body(mlp) == models.request_body(mlp)  # deterministic


def test_torchscript_roundtrip_and_handler(tmp_path: Path) -> None:
    spec = models.get("mlp")
    path = models.save_torchscript(spec, tmp_path / "model" / "model.pt")
    handle = inprocess.make_handler(inprocess.load_model(str(path)), spec.content_type)
    out = json.loads(handle(models.request_body(spec)))
    assert np.asarray(out).shape == spec.output_shape
    # NPY path keeps dtype and goes through the same handler.
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 64), dtype=np.float32))
    npy = inprocess.make_handler(inprocess.load_model(str(path)), models.NPY)
    assert np.asarray(json.loads(npy(buf.getvalue()))).shape == (2, 10)


def test_inprocess_loop_and_percentiles() -> None:
    res = inprocess.loop(lambda b: b, b"x", 0.01)
    assert res["requests"] == len(res["latencies_ns"]) > 0
    assert 0.01 <= res["elapsed_s"] < 1.0
    samples = [i * 1_000_000 for i in range(1, 101)]  # 1..100 ms
    assert inprocess.percentile_ms(samples, 50) == 50.0
    assert inprocess.percentile_ms(samples, 99) == 99.0
    assert math.isnan(inprocess.percentile_ms([], 50))


def test_cpu_accounting_per_request() -> None:
    from types import SimpleNamespace as NS

    before = {1: (1.0, 0.5), 2: (2.0, 0.0), 3: None}
    after = {1: (2.0, 1.5), 2: (2.5, 0.5), 3: (9.0, 9.0)}
    acc = run.cpu_accounting(
        [1, 2, 3],
        before,
        after,
        NS(ru_utime=1.0, ru_stime=0.0),
        NS(ru_utime=1.5, ru_stime=0.5),
        1000,
    )
    assert acc["server_cpu_s"] == pytest.approx(3.0)
    assert acc["server_cpu_ms_per_req"] == pytest.approx(3.0)
    assert acc["server_sys_share"] == pytest.approx(1.5 / 3.0)
    assert set(acc["server_cpu_by_pid"]) == {1, 2}  # pid 3 had no "before": left out
    assert acc["wrk_cpu_ms_per_req"] == pytest.approx(1.0)
    assert (
        run.cpu_accounting([], {}, {}, NS(ru_utime=0, ru_stime=0), NS(ru_utime=0, ru_stime=0), 0)[
            "server_cpu_ms_per_req"
        ]
        is None
    )


def test_other_load() -> None:
    cores = __import__("os").cpu_count() or 1
    before = {"busy": 0.0, "softirq": 0.0, "steal": 0.0, "total": 0.0}
    after = {"busy": 3.0, "softirq": 0.5, "steal": 0.0, "total": 10.0 * cores}
    o = run.other_load(before, after, ours_s=2.0)
    assert o["other_cores"] == pytest.approx(0.1)
    assert o["softirq_cores"] == pytest.approx(0.05)
    assert run.other_load({}, after, 1.0) == {}


def test_rows_of_takes_median_over_rounds() -> None:
    def res(rps_srv: float, rps_ip: float) -> dict:
        pt = {"concurrency": 16, "rps": rps_srv, "p99_ms": rps_srv / 100, "errors": {}}
        return {"model": "m", "inprocess": {"rps": rps_ip}, "points": [pt], "server": {}}

    rows = run.rows_of([res(10.0, 40.0), res(30.0, 20.0), res(20.0, 30.0)], [16])
    assert len(rows) == 1
    r = rows[0]
    assert r["server"]["rps"] == 20.0 and r["server"]["p99_ms"] == 0.2  # the whole median point
    assert r["inprocess"]["rps"] == 30.0
    assert r["ratio"] == pytest.approx(20.0 / 30.0)
    assert r["rounds"] == {"server_rps": [10.0, 30.0, 20.0], "inprocess_rps": [40.0, 20.0, 30.0]}


def test_json_body_is_the_npy_bodys_values_written_in_full() -> None:
    spec = models.get("resnet18")
    body = models.json_body(spec)
    assert 3_000_000 < len(body) < 3_500_000  # the ~3 MB JSON request of issue 15
    as_json = np.asarray(json.loads(body), dtype=np.float32)
    as_npy = np.load(io.BytesIO(models.request_body(spec)))
    assert as_json.shape == spec.input_shape
    assert np.array_equal(as_json, as_npy)
