"""The default model_fn: which file is the model, and TorchScript only."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest
import torch

from eikit.accelerators import cpu_probe
from eikit.errors import ConfigurationError
from eikit_pytorch.loading import find_model_file, load_torchscript
from eikit_pytorch.session import TorchSession

pytestmark = pytest.mark.filterwarnings("ignore:`torch\\.jit\\.:DeprecationWarning")


class Affine(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
            self.linear.bias.copy_(torch.tensor([0.5, -1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


UNPICKLED: List[str] = []


class Tattletale(torch.nn.Module):
    """Records being unpickled, to prove the default model_fn never unpickles."""

    def __setstate__(self, state: Any) -> None:
        UNPICKLED.append("unpickled")
        super().__setstate__(state)


def save_script(path: Path) -> Path:
    torch.jit.save(torch.jit.script(Affine()), str(path))
    return path


def test_model_pt_wins_over_other_candidates(tmp_path: Path) -> None:
    save_script(tmp_path / "model.pt")
    save_script(tmp_path / "other.pth")
    assert find_model_file(tmp_path) == tmp_path / "model.pt"


def test_the_single_pth_file_is_the_model(tmp_path: Path) -> None:
    save_script(tmp_path / "resnet.pth")
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    (tmp_path / "dir.pt").mkdir()  # a folder is no candidate
    assert find_model_file(tmp_path) == tmp_path / "resnet.pth"


def test_two_candidates_without_model_pt_name_both(tmp_path: Path) -> None:
    save_script(tmp_path / "a.pt")
    save_script(tmp_path / "b.PTH")
    with pytest.raises(ConfigurationError) as info:
        find_model_file(tmp_path)
    assert "a.pt, b.PTH" in info.value.message
    assert "model.pt" in info.value.message


def test_no_candidate_says_add_model_pt_or_model_fn(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ConfigurationError) as info:
        find_model_file(tmp_path)
    assert "model.pt" in info.value.message
    assert "model_fn" in info.value.message


def test_missing_model_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        find_model_file(tmp_path / "absent")


def test_eager_model_file_is_refused_without_unpickling(tmp_path: Path) -> None:
    torch.save(Tattletale(), str(tmp_path / "model.pt"))
    UNPICKLED.clear()
    with pytest.raises(ConfigurationError) as info:
        load_torchscript(tmp_path / "model.pt", "cpu")
    assert UNPICKLED == []
    message = info.value.message
    assert "not TorchScript" in message
    assert "torch.save archive" in message
    assert "torch.jit.save" in message and "model_fn" in message


def test_state_dict_file_is_refused(tmp_path: Path) -> None:
    torch.save(Affine().state_dict(), str(tmp_path / "model.pth"))
    with pytest.raises(ConfigurationError, match="state_dict"):
        load_torchscript(tmp_path / "model.pth", "cpu")


def test_legacy_pickle_and_junk_are_named(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.pt"
    torch.save(Affine().state_dict(), str(legacy), _use_new_zipfile_serialization=False)
    with pytest.raises(ConfigurationError, match="legacy format"):
        load_torchscript(legacy, "cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"GIF89a not a model")
    with pytest.raises(ConfigurationError, match="not a PyTorch file"):
        load_torchscript(junk, "cpu")


def test_torchscript_that_does_not_load_keeps_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_script(tmp_path / "model.pt")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Unknown builtin op: neuron::forward_v2")

    monkeypatch.setattr(torch.jit, "load", refuse)
    with pytest.raises(ConfigurationError) as info:
        load_torchscript(path, "cpu")
    assert "neuron::forward_v2" in info.value.message
    assert "not TorchScript" not in info.value.message


def test_load_scripted_and_traced_models_and_log_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = TorchSession(cpu_probe(), "cpu", threads=None)
    save_script(tmp_path / "model.pt")
    traced_dir = tmp_path / "traced"
    traced_dir.mkdir()
    torch.jit.save(torch.jit.trace(Affine(), torch.zeros(1, 3)), str(traced_dir / "t.pth"))
    caplog.set_level(logging.INFO, logger="eikit_pytorch")
    for model_dir in (tmp_path, traced_dir):
        model = session.model_fn(model_dir)
        assert isinstance(model, torch.jit.ScriptModule)
        assert not model.training
        out = session.predict(model, [[1.0, 2.0, 3.0]])
        np.testing.assert_allclose(out, [[1.5, 4.0]])
    lines = [r.getMessage() for r in caplog.records if r.name == "eikit_pytorch.session"]
    assert len(lines) == 2
    assert str(tmp_path / "model.pt") in lines[0] and "on cpu" in lines[0]
    assert "t.pth" in lines[1] and "torch %s" % torch.__version__ in lines[1]
