"""EI detection and fallback in a real server, through a stand-in ``torcheia`` package.

No EI accelerator exists here: a ``torcheia`` module written by the test is put on the
server's PYTHONPATH, and ``SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true`` is set as
SageMaker would. The detection, worker start-up, loading and fallback code are the real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.conftest import expected


def fake_torcheia(root: Path, attach_body: str) -> Path:
    package = root / "torcheia"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from torcheia import jit\n__version__ = '1.0.0+test'\n")
    (package / "jit.py").write_text(
        textwrap.dedent(
            """
            import os
            def attach_eia(model, ordinal):
            %s
            """
        )
        % textwrap.indent(textwrap.dedent(attach_body), "    ")
    )
    return root


def _env(root: Path, **extra: str) -> dict:
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": path, "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT": "true"}
    env.update(extra)
    return env


def test_ei_is_chosen_and_used_when_signalled(tree, start, tmp_path):
    marker = tmp_path / "attached"
    root = fake_torcheia(
        tmp_path / "fake", "open(%r, 'w').write(str(ordinal))\nreturn model" % str(marker)
    )
    endpoint = start(tree, _env(root))
    answer = endpoint.invoke(b"[[1,2,3,4]]")
    assert answer.json() == expected([[1, 2, 3, 4]])
    assert marker.read_text() == "0"  # attach_eia(model, 0) ran in the worker
    assert "accelerator eia" in endpoint.log()


def test_a_model_that_fails_on_ei_falls_back_to_cpu_loudly(tree, start, tmp_path):
    root = fake_torcheia(tmp_path / "fake", "raise RuntimeError('EI accelerator unreachable')")
    endpoint = start(tree, _env(root))
    assert endpoint.invoke(b"[[1,2,3,4]]").json() == expected([[1, 2, 3, 4]])
    log = endpoint.log()
    assert "did not load on eia" in log and "EI accelerator unreachable" in log
    assert "falling back to cpu" in log


def test_strict_mode_refuses_to_fall_back(tree, start, tmp_path):
    root = fake_torcheia(tmp_path / "fake", "raise RuntimeError('EI accelerator unreachable')")
    endpoint = start(tree, _env(root, EIKIT_STRICT_ACCELERATOR="true"), ready=False)
    ping = endpoint.wait_failed()
    assert "EI accelerator unreachable" in ping.json()["error"]


def test_forcing_an_absent_accelerator_is_a_clear_error(tree, start):
    endpoint = start(tree, {"EIKIT_ACCELERATOR": "neuron"}, ready=False)
    ping = endpoint.wait_failed()
    assert "EIKIT_ACCELERATOR=neuron but it is not available" in ping.json()["error"]


@pytest.mark.parametrize("signal", ["true", "false"])
def test_eikit_detect_reports_every_probe(tmp_path, signal):
    root = fake_torcheia(tmp_path / "fake", "return model")
    env = dict(os.environ, **_env(root, SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=signal))
    out = subprocess.run(
        [sys.executable, "-m", "eikit", "detect", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    kinds = {probe["kind"]: probe for probe in report["probes"]}
    assert set(kinds) == {"eia", "neuron", "cuda", "cpu"}
    assert report["framework"] == "pytorch"
    if signal == "true":
        assert (
            report["chosen"] == "eia" and report["fallback"] == ["cpu"] and report["workers"] == 1
        )
    else:
        assert report["chosen"] == "cpu"
        assert "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT" in kinds["eia"]["reason"]
    assert "neuron" in kinds["neuron"]["reason"]
    text = subprocess.run(
        [sys.executable, "-m", "eikit", "detect"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "chosen: %s" % report["chosen"] in text and "cuda" in text
