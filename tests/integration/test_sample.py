"""The quick start's sample model, served through eikit's own pytest plugin (process mode)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_sample_classifies_the_three_species(eikit_endpoint, tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample" / "make_model.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    endpoint = eikit_endpoint(tmp_path / "model", code_dir=tmp_path / "code")
    flowers = [[5.1, 3.5, 1.4, 0.2], [5.8, 2.7, 4.1, 1.0], [6.7, 3.0, 5.2, 2.3]]
    response = endpoint.invoke({"inputs": flowers}, accept="application/json")
    assert response.status == 200, response.text
    answer = response.json()
    assert [p["label"] for p in answer["predictions"]] == ["setosa", "versicolor", "virginica"]
    assert answer["served_on"] == "cpu"
    wrong_type = endpoint.invoke(b"5.1,3.5,1.4,0.2", content_type="text/csv")
    assert wrong_type.status == 415  # the sample's own InferenceError
