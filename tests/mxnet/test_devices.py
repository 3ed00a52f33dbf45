"""Which context a worker binds to, and why not the others.

No EI accelerator or GPU exists here. Seams: ``tests/mxnet/fakes`` on ``sys.path``
supplies ``eimx``, whose import adds a stand-in ``mx.eia()`` (a CPU context that says it is
the EI one, so the model really runs); CUDA availability is the runtime's ``cuda_check``
argument, and the CUDA session's code runs with ``mx.gpu`` answering such a CPU context.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import mxnet as mx
import pytest

from eikit.accelerators import ProbeResult, detect
from eikit.settings import Settings
from eikit_mxnet import MXNetRuntime
from eikit_mxnet.probes import eia_probe, mxnet_cuda_check
from eikit_mxnet.session import CudaSession, EiaSession, MXNetSession
from tests.frameworks import expected, save_mxnet_linear
from tests.mxnet.models import gluon_dense, mxnet_linear_module

FAKES = Path(__file__).parent / "fakes"
ROWS = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
REAL_EIA = getattr(mx, "eia", None)


@pytest.fixture(autouse=True)
def no_eia() -> Iterator[None]:
    """Every test starts and ends with this machine's stock mxnet: no mx.eia."""
    yield
    sys.modules.pop("eimx", None)
    if REAL_EIA is None and hasattr(mx, "eia"):
        del mx.eia


@pytest.fixture
def eimx(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(FAKES))
    import eimx

    eimx.calls.clear()
    return eimx


def settings(**values) -> Settings:
    return Settings(**values)


def test_eia_needs_the_sagemaker_signal_even_with_eimx(eimx):
    result = eia_probe(False)
    assert not result.available
    assert "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT" in result.reason


def test_eia_with_the_signal_but_stock_mxnet_says_why_not():
    result = eia_probe(True)
    assert not result.available
    assert "has no mx.eia()" in result.reason and "eimx" in result.reason


def test_eia_with_the_signal_and_eimx(eimx):
    result = eia_probe(True)
    assert result.available and result.detail == {"api": "eimx"}
    assert "eimx 1.0+fake" in result.reason or "eimx" in result.reason


def test_the_stand_in_a_cpu_session_installs_is_not_ei():
    MXNetSession(ProbeResult("cpu", True, "test"), "cpu")
    assert mx.eia() == mx.cpu()  # AWS EI scripts' mx.eia() loads on this session's context
    assert not eia_probe(True).available


def test_detection_prefers_eia_then_cuda_then_cpu(eimx):
    runtime = MXNetRuntime(cuda_check=lambda: (2, "2 CUDA device(s); pretend"))
    found = detect(runtime.probes(settings(accelerator_present=True)))
    assert [r.kind for r in found.chain] == ["eia", "cuda", "cpu"]
    found = detect(runtime.probes(settings(accelerator_present=False)))
    assert [r.kind for r in found.chain] == ["cuda", "cpu"]
    runtime = MXNetRuntime(cuda_check=lambda: (0, "no GPU in this test"))
    found = detect(runtime.probes(settings()))
    assert [r.kind for r in found.chain] == ["cpu"]
    assert "cuda: no GPU in this test" in found.describe()


def test_the_ei_session_binds_to_mx_eia_and_keeps_inputs_on_cpu(eimx, tmp_path, monkeypatch):
    accelerator = eia_probe(True)
    session = MXNetRuntime().session(accelerator, settings(accelerator_present=True), 0)
    assert isinstance(session, EiaSession) and session.api == "eimx"
    assert session.device == "eia:0" and eimx.calls == [0]
    save_mxnet_linear(tmp_path)
    module = session.model_fn(tmp_path)
    assert [type(ctx) for ctx in module._context] == [eimx.EiaContext]
    data = session.input_fn(json.dumps(ROWS), "application/json")
    assert data.context == mx.cpu()  # inputs stay on mx.cpu()
    seen = []
    original = session.to_device
    session.to_device = lambda array: seen.append(array.context) or original(array)
    assert session.to_wire(session.predict_fn(data, module)).tolist() == expected(ROWS)
    assert seen == [mx.cpu()]
    placed_on = []
    original_reset = mx.gluon.ParameterDict.reset_ctx
    monkeypatch.setattr(
        mx.gluon.ParameterDict,
        "reset_ctx",
        lambda params, ctx: placed_on.append(ctx) or original_reset(params, ctx),
    )
    block = session.prepare(gluon_dense())
    assert [type(ctx) for ctx in placed_on] == [eimx.EiaContext]
    assert session.to_wire(session.predict_fn(data, block)).tolist() == expected(ROWS)


def test_an_unreachable_accelerator_fails_the_ei_session(eimx, monkeypatch):
    monkeypatch.setenv("EIKIT_FAKE_EIA_FAIL", "EI accelerator unreachable")
    with pytest.raises(mx.base.MXNetError, match="unreachable"):
        EiaSession(eia_probe(True), "eia:0")


@pytest.fixture
def fake_gpus(monkeypatch: pytest.MonkeyPatch):
    """mx.gpu(i) answers a CPU context that records i: the CUDA session's code runs here."""

    class Gpu(mx.Context):
        def __init__(self, device_id: int = 0) -> None:
            super().__init__("cpu", 100 + device_id)
            self.gpu = device_id

    asked = []

    def gpu(device_id: int = 0) -> mx.Context:
        asked.append(device_id)
        return Gpu(device_id)

    monkeypatch.setattr(mx, "gpu", gpu)
    return asked


def test_worker_i_binds_to_gpu_i_mod_count(fake_gpus, tmp_path):
    runtime = MXNetRuntime(cuda_check=lambda: (2, "pretend"))
    found = detect(runtime.probes(settings()))
    assert found.chosen.kind == "cuda" and found.chosen.count == 2
    devices = [runtime.session(found.chosen, settings(), worker).device for worker in range(4)]
    assert devices == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert fake_gpus == [0, 1, 0, 1]
    session = runtime.session(found.chosen, settings(), 3)
    assert isinstance(session, CudaSession) and session.ctx.gpu == 1
    save_mxnet_linear(tmp_path)
    module = session.model_fn(tmp_path)
    assert module._context == [session.ctx]
    moved = []
    original = session.to_device
    session.to_device = lambda array: moved.append(original(array).context) or original(array)
    data = session.input_fn(json.dumps(ROWS), "application/json")
    assert data.context == mx.cpu()
    out = session.predict_fn(data, module)
    assert session.to_wire(out).tolist() == expected(ROWS)
    assert moved == [mx.Context("cpu", 101)]  # the input went to "gpu 1"
    block = session.prepare(gluon_dense())
    assert session.to_wire(session.predict_fn(data, block)).tolist() == expected(ROWS)


def test_a_users_module_is_moved_to_the_workers_gpu(fake_gpus):
    session = CudaSession(ProbeResult("cuda", True, "pretend", count=2), "cuda:1")
    placed = session.prepare(mxnet_linear_module())
    assert placed._context == [session.ctx]


def test_the_real_cuda_check_on_this_machine(tmp_path):
    count, reason = mxnet_cuda_check(tmp_path)
    assert count == 0 and "no NVIDIA devices" in reason
    (tmp_path / "nvidia0").write_text("")
    count, reason = mxnet_cuda_check(tmp_path)
    assert count == 0 and "sees no GPU" in reason  # the CPU build of mxnet


def test_thread_variables_share_the_cores_among_workers(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    runtime = MXNetRuntime()
    cpu = ProbeResult("cpu", True, "test", count=1)
    env = runtime.worker_environment(cpu, settings(workers=2), 0)
    assert env["OMP_NUM_THREADS"] == "4" and env["MXNET_CPU_WORKER_NTHREADS"] == "1"
    assert runtime.worker_environment(cpu, settings(), 0)["OMP_NUM_THREADS"] == "1"
    assert runtime.worker_environment(cpu, settings(worker_threads=3), 0)["OMP_NUM_THREADS"] == "3"
    eia = ProbeResult("eia", True, "test", count=1)  # one worker on EI: every core
    assert runtime.worker_environment(eia, settings(), 0)["OMP_NUM_THREADS"] == "8"


def test_importing_the_runtime_does_not_import_mxnet():
    import subprocess

    code = "import eikit_mxnet, sys; assert 'mxnet' not in sys.modules; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
