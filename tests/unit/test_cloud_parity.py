"""Parity: the new endpoint answers as the old one did (eikit migrate --samples, migrate verify).

The fleets behind the moto server's InvokeEndpoint are functions of the request (see
tests/unit/cloud_server.py): the old EI fleet, a new fleet that answers the same up to float
noise, and a wrong one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import numpy as np
import pytest

from eikit.cli import main
from eikit.cloud import migrate, parity
from eikit.cloud.answers import Answer, compare
from eikit.cloud.aws import CloudError
from eikit.cloud.state import StateFile
from tests.unit.cloud_account import (
    Aws,
    add_scaling,
    eia_endpoint,
    model_archive,
    push_image,
    scaling_of,
)
from tests.unit.cloud_server import REGISTRY

OLD = REGISTRY + ":pytorch-1.5-eia-py38"
CPU = REGISTRY + ":pytorch-2.13-cpu-py311"
NEURON = REGISTRY + ":pytorch-1.13-inf1-py310"
SUFFIX = "20260101-000000"


def model(weight: float) -> Callable[[bytes, str, Optional[str]], Tuple[bytes, str]]:
    """A fleet serving y = weight * x for JSON, CSV and NPY requests; text is echoed."""

    def answer(body: bytes, content_type: str, accept: Optional[str]) -> Tuple[bytes, str]:
        if content_type == "application/json":
            values = json.loads(body)
            return json.dumps({"scores": [weight * v for v in values]}).encode(), content_type
        if content_type == "text/csv":
            rows = [[float(c) for c in line.split(",")] for line in body.decode().splitlines()]
            out = "\n".join(",".join(repr(weight * v) for v in row) for row in rows)
            return out.encode(), "text/csv"
        if content_type == "application/x-npy":
            buffer = io.BytesIO()
            np.save(buffer, weight * np.load(io.BytesIO(body)))
            return buffer.getvalue(), content_type
        return body, "text/plain"

    return answer


def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "a.json").write_text("[1.0, 2.5, -3.0]")
    (folder / "b.csv").write_text("1,2,3\n4,5,6\n")
    buffer = io.BytesIO()
    np.save(buffer, np.arange(6, dtype=np.float32).reshape(2, 3))
    (folder / "c.npy").write_bytes(buffer.getvalue())
    (folder / "d.txt").write_text("hello")
    return folder


def migration(
    aws: Aws, tmp_path: Path, new_weight: float, instance_type: str = "ml.c5.xlarge", **kw: Any
) -> int:
    aws.stand_in.fleets[OLD] = model(2.0)
    for image in (CPU, NEURON):
        aws.stand_in.fleets[image] = model(new_weight)
    opts = migrate.Options(
        samples=str(samples(tmp_path)), baseline=str(tmp_path / "baseline.json"), repeat=2, **kw
    )
    plan = migrate.plan_migration(aws.clients, "flowers", instance_type, None, SUFFIX, opts)
    path = tmp_path / "state.json"
    return migrate.start(aws.clients, plan, path, aws.waiter(), 3600, aws.progress)


def endpoint_config(aws: Aws) -> str:
    answer = aws.sm.describe_endpoint(EndpointName="flowers")
    assert answer["EndpointStatus"] == "InService"
    return str(answer["EndpointConfigName"])


# --- comparison ---------------------------------------------------------------------------


def json_answer(value: Any) -> Answer:
    return Answer(json.dumps(value).encode(), "application/json")


def test_numbers_compare_within_the_tolerance_and_the_rest_exactly() -> None:
    base = {"scores": [1.0, 2.0, 3.0], "label": "cat", "n": 3}
    assert compare(json_answer(base), json_answer(dict(base, scores=[1.0, 2.0 + 1e-9, 3.0])),
                   1e-5, 1e-6) == []  # fmt: skip
    found = compare(json_answer(base), json_answer(dict(base, scores=[1.0, 2.5, 3.0])), 1e-5, 1e-6)
    assert found == ["$.scores[1]: 2.5, expected 2.0"]
    assert compare(json_answer(base), json_answer(dict(base, label="dog")), 1e-5, 1e-6) == [
        "$.label: 'dog', expected 'cat'"
    ]
    assert compare(json_answer([1, 2]), json_answer([1, 2, 3]), 0, 0) == ["$: 3 items, expected 2"]
    assert compare(json_answer(base), Answer(b"x", "text/plain"), 0, 0) == [
        "content type text/plain, expected application/json"
    ]
    assert compare(json_answer(base), Answer(error="ModelError 500"), 0, 0) == [
        "error 'ModelError 500', expected 'none'"
    ]
    assert compare(Answer(b"abc", "text/plain"), Answer(b"abd", "text/plain"), 1, 1) == [
        "3 bytes differ from the expected 3 bytes"
    ]
    assert compare(json_answer([float("nan")]), json_answer([float("nan")]), 0, 0) == []


def test_csv_and_npy_compare_as_arrays() -> None:
    csv = Answer(b"1.0,2.0\n3.0,4.0\n", "text/csv")
    assert compare(csv, Answer(b"1.0,2.0\n3.0,4.0000001\n", "text/csv"), 1e-5, 0) == []
    assert compare(csv, Answer(b"1.0,2.0\n3.0,5.0\n", "text/csv"), 1e-5, 0) == [
        "$[1,1]: 5.0, expected 4.0"
    ]
    a, b = io.BytesIO(), io.BytesIO()
    np.save(a, np.zeros((2, 2)))
    np.save(b, np.zeros((2, 3)))
    found = compare(Answer(a.getvalue(), "application/x-npy"), Answer(b.getvalue(),
                    "application/x-npy"), 0, 0)  # fmt: skip
    assert found == ["$: shape (2, 3), expected (2, 2)"]


def test_samples_take_their_content_type_from_the_suffix(tmp_path: Path) -> None:
    loaded = parity.load_samples(samples(tmp_path))
    assert [(s.name, s.content_type) for s in loaded] == [
        ("a.json", "application/json"), ("b.csv", "text/csv"),
        ("c.npy", "application/x-npy"), ("d.txt", "text/plain"),
    ]  # fmt: skip
    (tmp_path / "x.parquet").write_bytes(b"?")
    with pytest.raises(CloudError, match="cannot tell its content type.*--content-type"):
        parity.load_samples(tmp_path / "x.parquet")
    assert parity.load_samples(tmp_path / "x.parquet", "application/octet-stream")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CloudError, match="no sample files"):
        parity.load_samples(tmp_path / "empty")


# --- in a migration -----------------------------------------------------------------------


def test_a_migration_proves_parity_and_reports_latency(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    assert migration(aws, tmp_path, 2.0 * (1 + 1e-7)) == 0, aws.progress.getvalue()
    out = aws.progress.getvalue()
    assert "recording the answers of flowers to 4 sample(s)" in out
    assert "new fleet baking: parity: every answer matches" in out
    assert "parity: every answer matches (rtol 1e-05, atol 1e-06)" in out
    assert "latency ms: before p50" in out and "(8 calls), after p50" in out
    assert endpoint_config(aws).endswith(SUFFIX)
    state = StateFile.load(tmp_path / "state.json").data
    assert state["parity"]["report"]["ok"] is True
    assert set(state["parity"]["report"]["before"]) == {"p50", "p99", "calls"}
    baseline = parity.load(tmp_path / "baseline.json")
    assert baseline["config"] == "flowers-config" and len(baseline["samples"]) == 4


def test_a_mismatch_while_baking_rolls_back_to_the_old_fleet(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws)
    push_image(aws, "pytorch-2.13-cpu-py311")
    before = add_scaling(aws, "flowers")
    assert migration(aws, tmp_path, 2.5) == 1
    out = aws.progress.getvalue()
    assert "the new fleet answered differently while baking: SageMaker shifts traffic" in out
    assert "a.json:\n      $.scores[0]: 2.5, expected 2.0" in out
    assert "cloudwatch.set_alarm_state" in out
    assert endpoint_config(aws) == "flowers-config"  # SageMaker shifted back to the old fleet
    assert scaling_of(aws, "flowers") == before
    assert aws.stand_in.calls.count("update_endpoint") == 1  # the EI config never redeployed
    assert StateFile.load(tmp_path / "state.json").step == "rolled-back"


def test_a_mismatch_when_the_old_config_cannot_come_back_exits_with_the_diff(
    aws: Aws, tmp_path: Path
) -> None:
    """Inf1: no guardrails, so no baking to catch it; the EI config cannot be redeployed."""
    eia_endpoint(aws, archive=model_archive(compiled_for=("inf1",)))
    push_image(aws, "pytorch-1.13-inf1-py310")
    before = add_scaling(aws, "flowers")
    assert migration(aws, tmp_path, 2.5, "ml.inf1.xlarge") == 1
    out = aws.progress.getvalue()
    assert "parity: 4 sample(s) differ" in out or "parity: 3 sample(s) differ" in out
    assert "c.npy:\n    $[0,1]: 2.5, expected 2.0" in out
    assert "cannot be deployed again (Elastic Inference), so the endpoint stays on" in out
    assert endpoint_config(aws).endswith(SUFFIX)
    assert scaling_of(aws, "flowers") == before  # consistent: autoscaling back on
    state = StateFile.load(tmp_path / "state.json")
    assert state.step == "done" and state.data["parity"]["report"]["ok"] is False


def test_a_mismatch_rolls_back_when_the_old_config_can_come_back(aws: Aws, tmp_path: Path) -> None:
    eia_endpoint(aws, archive=model_archive(compiled_for=("inf1",)))
    push_image(aws, "pytorch-1.13-inf1-py310")
    aws.stand_in.backend().endpoint_configs["flowers-config"].production_variants[0].pop(
        "AcceleratorType"
    )
    assert migration(aws, tmp_path, 2.5, "ml.inf1.xlarge") == 1
    assert endpoint_config(aws) == "flowers-config"
    assert StateFile.load(tmp_path / "state.json").step == "rolled-back"


def test_verify_records_a_baseline_and_compares(aws: Aws, tmp_path: Path, capsys: Any) -> None:
    eia_endpoint(aws)
    aws.stand_in.fleets[OLD] = model(2.0)
    folder = str(samples(tmp_path))
    base = ["migrate", "verify", "flowers", "--samples", folder,
            "--baseline", str(tmp_path / "b.json")]  # fmt: skip
    assert main(base + ["--record"]) == 0
    assert "baseline of flowers (flowers-config): 4 sample(s)" in capsys.readouterr().out
    assert main(base) == 0
    assert "parity: every answer matches" in capsys.readouterr().out
    aws.stand_in.fleets[OLD] = model(2.0 + 1e-3)
    assert main(base + ["--rtol", "1e-2"]) == 0
    capsys.readouterr()
    assert main(base) == 1
    out = capsys.readouterr().out
    assert "parity: 3 sample(s) differ" in out and "b.csv:" in out and "latency ms" in out
    (Path(folder) / "a.json").write_text("[9]")
    assert main(base) == 1
    assert "the samples are not those of the baseline (a.json differ)" in capsys.readouterr().err
    assert main(["migrate", "verify", "flowers"]) == 1
