"""EI, Neuron and CUDA through narrow seams; the real session code runs around them.

Seams: ``tests/pytorch/fakes`` on ``sys.path`` supplies ``torcheia`` (whose ``attach_eia``
records its calls) and ``torch_neuronx`` (an empty module); a ``torch_eia`` dist-info folder
stands for AWS's 1.3.1 build; ``/dev`` is a ``tmp_path``; ``torch.jit.optimized_execution``
and ``torch.jit.load`` are wrapped by recorders that call the real functions; CUDA
availability is the runtime's ``cuda_check`` argument, and the CUDA session runs its code
with device ``"cpu"``.

Not verified on real hardware: that torcheia's ``attach_eia`` and torch_eia's two-argument
``optimized_execution`` actually reach an EI accelerator (no EI exists any more); that a
Neuron-compiled model loads and runs on Inferentia/Trainium; that ``cuda:N`` placement,
``torch.cuda.set_device`` and the copies to and from a GPU behave on a real GPU (the code
path runs here with device ``cpu``, which moves nothing).
"""

from __future__ import annotations

import contextlib
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
import torch

from eikit.accelerators import ProbeResult, detect
from eikit.errors import ConfigurationError, NotCompiled
from eikit.settings import Settings
from eikit_pytorch import PyTorchRuntime
from eikit_pytorch import session as session_module
from eikit_pytorch.loading import looks_neuron_compiled
from eikit_pytorch.probes import cuda_probe, eia_probe, neuron_probe, torch_cuda_check
from eikit_pytorch.session import (
    CudaSession,
    NeuronSession,
    TorchEiaLegacySession,
    TorchEiaSession,
)
from tests.neuron_host import fake_neuron_host

pytestmark = pytest.mark.filterwarnings("ignore:`torch\\.jit\\.:DeprecationWarning")

FAKES = Path(__file__).parent / "fakes"
FAKE_MODULES = ("torcheia", "torch_neuronx", "torch_neuron")


class Affine(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


def save_model(model_dir: Path) -> Path:
    path = model_dir / "model.pt"
    torch.jit.save(torch.jit.script(Affine()), str(path))
    return path


def _forget_fakes() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in FAKE_MODULES:
            del sys.modules[name]


@pytest.fixture(autouse=True)
def torch_state() -> Iterator[None]:
    """Sessions change process-wide torch settings; put them back."""
    threads = torch.get_num_threads()
    profiling = torch._C._jit_set_profiling_executor(True)
    torch._C._jit_set_profiling_executor(profiling)
    yield
    torch.set_num_threads(threads)
    torch._C._jit_set_profiling_executor(profiling)
    _forget_fakes()


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _forget_fakes()
    monkeypatch.syspath_prepend(str(FAKES))
    yield


class ExecutionRecorder:
    """Wraps torch.jit.optimized_execution: records its arguments and whether it is open."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = torch.jit.optimized_execution
        self.calls: List[Tuple[Any, ...]] = []
        self.open = False
        monkeypatch.setattr(torch.jit, "optimized_execution", self)

    @contextlib.contextmanager
    def __call__(self, should_optimize: bool, options: Optional[Dict[str, Any]] = None) -> Any:
        self.calls.append((should_optimize,) if options is None else (should_optimize, options))
        with self.real(should_optimize):  # stock torch takes no options
            self.open = True
            try:
                yield
            finally:
                self.open = False


class Spy(torch.nn.Module):
    """Calls the model it wraps and records whether the recorder's context was open."""

    def __init__(self, model: Any, recorder: ExecutionRecorder) -> None:
        super().__init__()
        self.model = model
        self.recorder = recorder
        self.inside: List[bool] = []

    def forward(self, x: torch.Tensor) -> Any:
        self.inside.append(self.recorder.open)
        return self.model(x)


def eia(api: str) -> ProbeResult:
    return ProbeResult("eia", True, "test", 1, {"api": api})


# --- EI: probe ------------------------------------------------------------


def test_eia_needs_the_sagemaker_signal_even_with_torcheia(fakes: None) -> None:
    result = eia_probe(accelerator_present=False)
    assert not result.available
    assert "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT" in result.reason
    assert "torcheia" not in sys.modules, "no EI import without the signal"


def test_eia_with_signal_and_torcheia(fakes: None) -> None:
    result = eia_probe(accelerator_present=True)
    assert result.available and result.count == 1
    assert result.detail == {"api": "torcheia"}
    assert "torcheia 1.0.0+fake" in result.reason


def test_eia_with_signal_but_no_ei_torch_says_what_is_missing() -> None:
    result = eia_probe(accelerator_present=True)
    assert not result.available
    assert "torcheia is not installed" in result.reason
    assert "not the torch_eia build" in result.reason


def test_eia_broken_torcheia_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "torcheia"
    package.mkdir()
    (package / "__init__.py").write_text("raise OSError('libtorch_cpu.so: undefined symbol')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = eia_probe(accelerator_present=True)
    assert not result.available
    assert "does not import (OSError: libtorch_cpu.so: undefined symbol)" in result.reason


def test_eia_torch_eia_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "torch_eia-1.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch_eia\nVersion: 1.3.1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = eia_probe(accelerator_present=True)
    assert result.available
    assert result.detail == {"api": "torch_eia"}
    assert "torch_eia 1.3.1" in result.reason


def test_eia_torch_eia_version_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "__version__", "1.3.1+eia")
    result = eia_probe(accelerator_present=True)
    assert result.available and result.detail == {"api": "torch_eia"}


def test_runtime_probes_read_the_settings(tmp_path: Path, fakes: None) -> None:
    runtime = PyTorchRuntime(cuda_check=lambda: (0, "no GPU in this test"))
    off = detect(runtime.probes(Settings(base_dir=tmp_path, EIKIT_DEVICE_ROOT=tmp_path)))
    assert off.chosen.kind == "cpu"
    settings = Settings(
        base_dir=tmp_path,
        EIKIT_DEVICE_ROOT=tmp_path,
        SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT="true",
    )
    on = detect(runtime.probes(settings))
    assert [r.kind for r in on.chain] == ["eia", "cpu"]


# --- EI: sessions ---------------------------------------------------------


def test_torcheia_session_attaches_and_predicts_inside_optimized_execution(
    tmp_path: Path, fakes: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch._C._jit_set_profiling_executor(True)
    recorder = ExecutionRecorder(monkeypatch)
    runtime = PyTorchRuntime()
    session = runtime.session(eia("torcheia"), Settings(base_dir=tmp_path), 0)
    assert isinstance(session, TorchEiaSession)
    assert torch._C._jit_set_profiling_executor(False) is False, "profiling executor left on"
    import torcheia

    save_model(tmp_path)
    model = session.model_fn(tmp_path)
    assert torcheia.jit.calls == [(model, 0)]
    assert isinstance(model, torch.jit.ScriptModule) and not model.training
    assert session.prepare(model) is model and len(torcheia.jit.calls) == 1

    spy = Spy(model, recorder)
    out = session.predict(spy, [[1.0, 1.0]])
    np.testing.assert_array_equal(out, [[2.0, 3.0]])
    assert spy.inside == [True]
    assert recorder.calls == [(True,)]


def test_torcheia_session_refuses_an_eager_model(tmp_path: Path, fakes: None) -> None:
    session = PyTorchRuntime().session(eia("torcheia"), Settings(base_dir=tmp_path), 0)
    with pytest.raises(ConfigurationError, match="needs a TorchScript model.*Affine"):
        session.prepare(Affine())
    import torcheia

    assert torcheia.jit.calls == []
    scripted = torch.jit.script(Affine().train())
    assert session.prepare(scripted) is scripted and not scripted.training
    assert torcheia.jit.calls == [(scripted, 0)]


def test_torch_eia_session_keeps_the_model_on_cpu_and_targets_eia0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = ExecutionRecorder(monkeypatch)
    session = PyTorchRuntime().session(eia("torch_eia"), Settings(base_dir=tmp_path), 0)
    assert isinstance(session, TorchEiaLegacySession)
    save_model(tmp_path)
    model = session.model_fn(tmp_path)
    assert all(p.device.type == "cpu" for p in model.parameters())
    spy = Spy(model, recorder)
    out = session.predict(spy, np.array([[1.0, 2.0]], dtype=np.float32))
    np.testing.assert_array_equal(out, [[2.0, 6.0]])
    assert spy.inside == [True]
    assert recorder.calls == [(True, {"target_device": "eia:0"})]
    with pytest.raises(ConfigurationError, match="TorchScript"):
        session.prepare(Affine())


# --- Neuron ---------------------------------------------------------------


def neuron_devices(root: Path, count: int) -> Path:
    for index in range(count):
        (root / ("neuron%d" % index)).touch()
    (root / "neuron_extra").touch()  # not a device node name
    return root


def test_neuron_probe(tmp_path: Path, fakes: None) -> None:
    assert not neuron_probe(tmp_path).available
    assert "no Neuron devices" in neuron_probe(tmp_path).reason
    neuron_devices(tmp_path, 2)
    # no sysfs, no neuron-ls: the generation comes from the package, one core per device
    result = neuron_probe(tmp_path, tmp_path / "no-sysfs", neuron_ls=None)
    assert result.available and result.count == 2
    assert result.detail["package"] == "torch_neuronx"
    assert result.detail["generation"] == "inf2"
    assert result.detail["devices"] == ["neuron0", "neuron1"]
    assert result.detail["cores"] == [0, 1]
    assert "torch_neuronx" not in sys.modules, "the probe only locates the package"


def test_neuron_probe_counts_cores_and_wants_the_package_of_the_hosts_generation(
    tmp_path: Path, fakes: None
) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=2, cores=4, instance_type="Inf1")
    result = neuron_probe(dev, sysfs, neuron_ls=None)
    assert result.available and result.count == 8  # one worker per NeuronCore
    assert result.detail["package"] == "torch_neuron" and result.detail["generation"] == "inf1"
    assert "Inf1: inf1, NeuronCore v1" in result.reason
    narrowed = neuron_probe(dev, sysfs, visible="2-3", neuron_ls=None)
    assert narrowed.count == 2 and narrowed.detail["cores"] == [2, 3]


def test_neuron_probe_refuses_the_other_generations_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inf2 image (torch_neuronx only) on an Inf1 host: unavailable, saying why."""
    only = tmp_path / "only"
    (only / "torch_neuronx").mkdir(parents=True)
    (only / "torch_neuronx" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(only))
    dev, sysfs = fake_neuron_host(tmp_path, devices=1, cores=4, instance_type="Inf1")
    result = neuron_probe(dev, sysfs, neuron_ls=None)
    assert not result.available
    assert "torch_neuronx is installed and this generation needs torch_neuron" in result.reason
    assert "eikit inf1 image" in result.reason


def test_workers_are_pinned_one_per_core(tmp_path: Path, fakes: None) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=1, cores=4, instance_type="Inf2")
    settings = Settings(
        base_dir=tmp_path,
        EIKIT_DEVICE_ROOT=str(dev),
        EIKIT_NEURON_SYSFS_ROOT=str(sysfs),
        NEURON_RT_VISIBLE_CORES="1,3",
    )
    runtime = PyTorchRuntime()
    probe = runtime.probes(settings)["neuron"]()
    assert runtime.default_workers(probe, settings) == 2
    assert [runtime.worker_pinning(probe, settings, w) for w in range(3)] == [
        {"NEURON_RT_VISIBLE_CORES": "1", "NEURON_RT_NUM_CORES": "1"},
        {"NEURON_RT_VISIBLE_CORES": "3", "NEURON_RT_NUM_CORES": "1"},
        {"NEURON_RT_VISIBLE_CORES": "1", "NEURON_RT_NUM_CORES": "1"},
    ]
    cpu = ProbeResult("cpu", True, "always", 1)
    assert runtime.worker_pinning(cpu, settings, 0) == {}


def test_neuron_probe_without_the_package(tmp_path: Path) -> None:
    result = neuron_probe(neuron_devices(tmp_path, 1))
    assert not result.available
    assert "1 Neuron device(s)" in result.reason and "torch_neuronx" in result.reason


def test_neuron_package_is_imported_before_torch_jit_load(
    tmp_path: Path, fakes: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = torch.jit.load
    loads: List[Tuple[Any, bool]] = []

    def recording_load(path: Any, map_location: Any = None, **kwargs: Any) -> Any:
        loads.append((map_location, "torch_neuronx" in sys.modules))
        return real_load(path, map_location=map_location, **kwargs)

    monkeypatch.setattr(torch.jit, "load", recording_load)
    save_model(tmp_path)
    probe = neuron_probe(neuron_devices(tmp_path, 1), tmp_path / "no-sysfs", neuron_ls=None)
    session = PyTorchRuntime().session(probe, Settings(base_dir=tmp_path), 0)
    assert isinstance(session, NeuronSession) and session.api == "torch_neuronx"
    assert "torch_neuronx" in sys.modules, "imported when the session opens, before model_fn"
    # not compiled for Neuron: refused with the command that compiles it
    with pytest.raises(NotCompiled, match="eikit compile %s --generation inf2" % tmp_path):
        session.model_fn(tmp_path)
    # compiled by hand (Neuron ops in its code, no eikit manifest): loaded as it is
    monkeypatch.setattr(session_module, "looks_neuron_compiled", lambda path: True)
    model = session.model_fn(tmp_path)
    assert loads == [(None, True)]
    out = session.predict(model, [[1.0, 1.0]])
    np.testing.assert_array_equal(out, [[2.0, 3.0]])


def test_a_hand_compiled_model_is_recognised_by_its_neuron_ops(tmp_path: Path) -> None:
    save_model(tmp_path)
    assert not looks_neuron_compiled(tmp_path / "model.pt")
    marked = tmp_path / "marked.pt"
    with zipfile.ZipFile(str(tmp_path / "model.pt")) as source, zipfile.ZipFile(
        str(marked), "w"
    ) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if "/code/" in item.filename and item.filename.endswith(".py"):
                data += b"\n# torch.ops.neuron.forward_v2(...)\n"
            target.writestr(item, data)
    assert looks_neuron_compiled(marked)


def test_neuron_package_that_does_not_import(tmp_path: Path) -> None:
    probe = ProbeResult("neuron", True, "test", 1, {"package": "torch_neuron"})
    with pytest.raises(ConfigurationError, match="torch_neuron does not import"):
        PyTorchRuntime().session(probe, Settings(base_dir=tmp_path), 0)


# --- CUDA -----------------------------------------------------------------


def test_cuda_probe_through_the_seam(tmp_path: Path) -> None:
    runtime = PyTorchRuntime(cuda_check=lambda: (2, "2 CUDA device(s); pretend"))
    result = detect(runtime.probes(Settings(base_dir=tmp_path, EIKIT_DEVICE_ROOT=tmp_path)))
    assert result.chosen.kind == "cuda" and result.chosen.count == 2
    assert [r.kind for r in result.chain] == ["cuda", "cpu"]
    off = cuda_probe(lambda: (0, "torch.cuda.is_available() is False"))
    assert not off.available and off.reason == "torch.cuda.is_available() is False"


def test_the_real_cuda_check_on_this_machine(tmp_path: Path) -> None:
    count, reason = torch_cuda_check(tmp_path)
    assert count == 0 and reason == "no NVIDIA devices (%s/nvidia[0-9]*)" % tmp_path
    (tmp_path / "nvidia0").touch()  # a node, but this torch cannot use a GPU
    count, reason = torch_cuda_check(tmp_path)
    if torch.cuda.is_available():
        assert count == torch.cuda.device_count() and "CUDA device(s)" in reason
    else:
        assert count == 0 and ("without CUDA" in reason or "is_available() is False" in reason)


def test_cuda_sessions_spread_workers_over_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen: List[Any] = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    cuda = ProbeResult("cuda", True, "test", count=2)
    runtime = PyTorchRuntime(cuda_check=lambda: (2, "pretend"))
    devices = []
    for worker in range(4):
        session = runtime.session(cuda, Settings(base_dir=tmp_path), worker)
        assert isinstance(session, CudaSession)
        devices.append(session.device)
    assert devices == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert chosen == [torch.device(d) for d in devices]


def test_cuda_session_moves_model_inputs_and_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CUDA session's code with device "cpu": every move is recorded, then done for real."""
    moves: List[Tuple[str, Any]] = []
    tensor_to, tensor_cpu, module_to = torch.Tensor.to, torch.Tensor.cpu, torch.nn.Module.to

    # Module.to moves each parameter with Tensor.to: those are not input moves.
    moving_model: List[bool] = []

    def record_tensor_to(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not moving_model:
            moves.append(("input.to", args))
        return tensor_to(self, *args, **kwargs)

    def record_tensor_cpu(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        moves.append(("output.cpu", args))
        return tensor_cpu(self, *args, **kwargs)

    def record_module_to(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        moves.append(("model.to", args))
        moving_model.append(True)
        try:
            return module_to(self, *args, **kwargs)
        finally:
            moving_model.pop()

    real_load = torch.jit.load
    locations: List[Any] = []

    def recording_load(path: Any, map_location: Any = None, **kwargs: Any) -> Any:
        locations.append(map_location)
        return real_load(path, map_location=map_location, **kwargs)

    monkeypatch.setattr(torch.jit, "load", recording_load)
    save_model(tmp_path)
    session = CudaSession(ProbeResult("cuda", True, "test", count=1), "cpu", threads=None)
    monkeypatch.setattr(torch.Tensor, "to", record_tensor_to)
    monkeypatch.setattr(torch.Tensor, "cpu", record_tensor_cpu)
    monkeypatch.setattr(torch.nn.Module, "to", record_module_to)

    model = session.model_fn(tmp_path)
    assert locations == ["cpu"], "TorchScript is loaded straight onto the device"
    assert moves == [("model.to", ("cpu",))]
    moves.clear()
    out = session.predict(model, {"x": np.array([[1.0, 1.0]], dtype=np.float32)})
    np.testing.assert_array_equal(out, [[2.0, 3.0]])
    assert moves == [("input.to", ("cpu",)), ("output.cpu", ())]

    moves.clear()
    eager = Affine().train()
    assert session.prepare(eager) is eager and not eager.training
    assert moves == [("model.to", ("cpu",))]
