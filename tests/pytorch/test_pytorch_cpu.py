"""The PyTorch runtime on CPU: the default predict_fn's inputs and outputs, threads, prepare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest
import torch

from eikit.accelerators import ProbeResult, cpu_probe
from eikit.errors import BadRequest, ConfigurationError
from eikit.runtime import find_runtime
from eikit.settings import Settings
from eikit_pytorch import PyTorchRuntime
from eikit_pytorch.session import (
    CudaSession,
    NeuronSession,
    TorchEiaLegacySession,
    TorchSession,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch\\.jit\\.:DeprecationWarning")


@pytest.fixture(autouse=True)
def keep_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Difference(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x - y


class Several(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        return x * 2, {"sum": x.sum(), "half": x.to(torch.bfloat16) / 2}


class GradWatcher(torch.nn.Module):
    """Eager, with a parameter: records the autograd state its forward sees."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(3.0))
        self.seen: List[Tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inference = getattr(torch, "is_inference_mode_enabled", lambda: False)()
        self.seen.append((torch.is_grad_enabled(), inference))
        return x * self.scale


def scripted(module: torch.nn.Module) -> Any:
    return torch.jit.script(module)


@pytest.fixture
def session() -> TorchSession:
    return TorchSession(cpu_probe(), "cpu", threads=None)


# --- inputs ---------------------------------------------------------------


def test_lists_from_text_become_float32_and_ints_stay_int64(session: TorchSession) -> None:
    model = scripted(Identity())
    floats = session.predict(model, [[1.5, 2], [3, 4]])
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats, [[1.5, 2.0], [3.0, 4.0]])
    assert session.predict(model, [[1, 2, 3]]).dtype == np.int64
    assert session.predict(model, 2.5).dtype == np.float32
    assert session.predict(model, [True, False]).dtype == np.bool_


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_arrays_keep_their_dtype(session: TorchSession, dtype: Any) -> None:
    data = np.arange(6, dtype=dtype).reshape(2, 3)
    out = session.predict(scripted(Identity()), data)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, data)


def test_readonly_big_endian_and_reversed_arrays_are_taken(session: TorchSession) -> None:
    model = scripted(Identity())
    readonly = np.frombuffer(np.arange(4, dtype=np.float32).tobytes(), dtype=np.float32)
    assert not readonly.flags.writeable
    np.testing.assert_array_equal(session.predict(model, readonly), [0, 1, 2, 3])
    big = np.arange(3, dtype=">f4")
    np.testing.assert_array_equal(session.predict(model, big), [0, 1, 2])
    reversed_view = np.arange(3, dtype=np.float32)[::-1]
    np.testing.assert_array_equal(session.predict(model, reversed_view), [2, 1, 0])


def test_dict_inputs_are_positional_in_order(session: TorchSession) -> None:
    model = scripted(Difference())
    data = {"x": np.array([10.0, 20.0]), "y": np.array([1.0, 2.0])}
    np.testing.assert_array_equal(session.predict(model, data), [9.0, 18.0])
    swapped = {"y": data["y"], "x": data["x"]}
    np.testing.assert_array_equal(session.predict(model, swapped), [-9.0, -18.0])


def test_tensors_from_a_user_input_fn_pass_through(session: TorchSession) -> None:
    model = scripted(Difference())
    out = session.predict(model, (torch.tensor([5]), torch.tensor([2])))
    np.testing.assert_array_equal(out, [3])


@pytest.mark.parametrize("body", [b"\x89PNG", bytearray(b"abc"), "a sentence"])
def test_bytes_and_text_need_a_user_input_fn(session: TorchSession, body: Any) -> None:
    with pytest.raises(BadRequest) as info:
        session.predict(scripted(Identity()), body)
    assert "input_fn" in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize(
    "data, words",
    [
        ([[1.0, 2.0], [3.0]], "rectangular"),
        (np.array(["a", "b"]), "numbers"),
        ({}, "no arrays"),
        ({"a": {"nested": 1}}, "input_fn"),
    ],
)
def test_inputs_the_default_predict_cannot_take(
    session: TorchSession, data: Any, words: str
) -> None:
    with pytest.raises(BadRequest, match=words):
        session.predict(scripted(Identity()), data)


# --- outputs --------------------------------------------------------------


def test_tuple_and_dict_outputs_come_back_as_numpy(session: TorchSession) -> None:
    doubled, extra = session.predict(scripted(Several()), [1.0, 2.0])
    assert isinstance(doubled, np.ndarray)
    np.testing.assert_array_equal(doubled, [2.0, 4.0])
    assert isinstance(extra["sum"], np.ndarray) and extra["sum"] == 3.0
    assert extra["half"].dtype == np.float32  # bfloat16 has no numpy dtype
    np.testing.assert_array_equal(extra["half"], [0.5, 1.0])


def test_to_wire_converts_tensors_from_a_user_predict_fn(session: TorchSession) -> None:
    wire = session.to_wire({"scores": torch.ones(2, requires_grad=True), "n": [torch.tensor(1)]})
    assert isinstance(wire["scores"], np.ndarray)
    assert isinstance(wire["n"][0], np.ndarray)
    already = np.zeros(2)
    assert session.to_wire(already) is already


def test_predict_runs_without_autograd(session: TorchSession) -> None:
    model = session.prepare(GradWatcher())
    out = session.predict(model, [1.0, 2.0])
    np.testing.assert_array_equal(out, [3.0, 6.0])
    grad_enabled, inference = model.seen[-1]
    assert not grad_enabled
    assert inference == hasattr(torch, "inference_mode")


# --- prepare --------------------------------------------------------------


def test_prepare_sets_eval_mode_once_and_passes_other_objects(session: TorchSession) -> None:
    model = GradWatcher().train()
    prepared = session.prepare(model)
    assert prepared is model and not model.training
    model.train()
    assert session.prepare(model) is model
    assert model.training, "a model this session already prepared is not touched again"
    bundle = {"model": GradWatcher(), "labels": ["cat"]}
    assert session.prepare(bundle) is bundle


# --- the runtime ----------------------------------------------------------


def test_threads_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = PyTorchRuntime()
    runtime.session(cpu_probe(), Settings(base_dir=tmp_path, worker_threads=3), 0)
    assert torch.get_num_threads() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    runtime.session(cpu_probe(), Settings(base_dir=tmp_path, workers=4), 0)
    assert torch.get_num_threads() == 2
    runtime.session(cpu_probe(), Settings(base_dir=tmp_path, workers=16), 0)
    assert torch.get_num_threads() == 1
    runtime.session(cpu_probe(), Settings(base_dir=tmp_path), 0)  # one worker per core
    assert torch.get_num_threads() == 1


def test_session_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = PyTorchRuntime()
    settings = Settings(base_dir=tmp_path)
    cpu = runtime.session(cpu_probe(), settings, 5)
    assert type(cpu) is TorchSession and cpu.device == "cpu"
    eia = ProbeResult("eia", True, "test", 1, {"api": "torch_eia"})
    legacy = runtime.session(eia, settings, 0)
    assert isinstance(legacy, TorchEiaLegacySession) and legacy.device == "eia:0"
    with pytest.raises(ConfigurationError, match="no known API"):
        runtime.session(ProbeResult("eia", True, "test", 1, {}), settings, 0)
    with pytest.raises(ConfigurationError, match="cannot use accelerator 'tpu'"):
        runtime.session(ProbeResult("tpu", True, "test", 1), settings, 0)
    # Neuron and CUDA sessions are covered in test_pytorch_accelerators.py.
    assert issubclass(NeuronSession, TorchSession) and issubclass(CudaSession, TorchSession)


def test_entry_point_finds_the_runtime() -> None:
    runtime = find_runtime("pytorch")
    assert isinstance(runtime, PyTorchRuntime)
    assert runtime.name == "pytorch"


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, eikit_pytorch\n"
        "eikit_pytorch.PyTorchRuntime()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cpu_probes_leave_torch_unimported(tmp_path: Path) -> None:
    """On a host with no accelerator, detection must not import torch in the frontend."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from eikit.accelerators import detect\n"
        "from eikit.settings import Settings\n"
        "from eikit_pytorch import PyTorchRuntime\n"
        "settings = Settings(EIKIT_DEVICE_ROOT=Path(sys.argv[1]))\n"
        "assert detect(PyTorchRuntime().probes(settings)).chosen.kind == 'cpu'\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)


def test_floating_inputs_take_the_models_floating_dtype(session: TorchSession) -> None:
    float32_model = session.prepare(scripted(torch.nn.Linear(3, 1)))
    out = session.predict(float32_model, np.ones((2, 3), dtype=np.float64))
    assert out.dtype == np.float32 and out.shape == (2, 1)
    float64_model = session.prepare(scripted(torch.nn.Linear(3, 1).double()))
    out = session.predict(float64_model, np.ones((2, 3), dtype=np.float32))
    assert out.dtype == np.float64

    class Lookup(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Embedding(10, 2)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.table(ids)

    ids = np.array([[1, 2, 3]], dtype=np.int64)  # integer inputs are never cast
    assert session.predict(session.prepare(scripted(Lookup())), ids).shape == (1, 3, 2)
