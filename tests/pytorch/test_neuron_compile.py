"""`eikit compile` for both generations, and what the Neuron session does with the result,
through stand-in ``torch_neuron`` / ``torch_neuronx`` (tests/pytorch/fakes): their ``trace``
records its arguments and returns a real ``torch.jit.trace`` of the model that, like a
compiled graph, takes only the shape it was traced with.

Not verified here: that torch-neuron / torch-neuronx accept these calls and compile real
graphs, that their artifacts run on a NeuronCore, and that SageMaker Neo's output archive
looks as eikit expects. No Neuron package or device exists on these machines.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest
import torch

from eikit.accelerators import ProbeResult
from eikit.cli import main
from eikit.compile.example import Example, from_shapes
from eikit.compile.request import CompileRequest
from eikit.compile.run import compile_archive
from eikit.errors import BadRequest, BatchTooLarge, ConfigurationError, NotCompiled
from eikit.neuron.manifest import MANIFEST_NAME, read_manifest
from eikit.settings import Settings
from eikit_pytorch import PyTorchRuntime
from eikit_pytorch import compiling as compiling_module
from eikit_pytorch.session import NeuronSession


class TwoLayers(torch.nn.Module):
    """Rows independent of each other, as padding needs; non-linear, so rows differ."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    torch.jit.save(torch.jit.script(TwoLayers().eval()), str(folder / "model.pt"))
    (folder / "code" / "inference.py").write_text("# the user's script, kept as it is\n")
    return folder


def archive_of(folder: Path, path: Path) -> Path:
    with tarfile.open(str(path), "w:gz") as tar:
        for item in sorted(folder.rglob("*")):
            tar.add(str(item), item.relative_to(folder).as_posix(), recursive=False)
    return path


def json_example(rows: int = 1) -> Example:
    body = json.dumps([[0.5, -1.0, 2.0, 0.25]] * rows).encode()
    return Example(body=body, content_type="application/json")


def request(source: Path, generation: str, sizes: List[int], **kw: Any) -> CompileRequest:
    lines: List[str] = []
    return CompileRequest(
        source=source,
        generation=generation,
        example=kw.pop("example", json_example()),
        batch_sizes=sizes,
        where=kw.pop("where", "in-process"),
        progress=lines.append,
        **kw,
    )


def names(archive: Path) -> List[str]:
    with tarfile.open(str(archive)) as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


def neuron_session(generation: str, split: bool = True) -> NeuronSession:
    package = "torch_neuron" if generation == "inf1" else "torch_neuronx"
    probe = ProbeResult(
        "neuron", True, "test", 4, {"package": package, "generation": generation, "cores": [0]}
    )
    settings = Settings(split_batches=split)
    session = PyTorchRuntime().session(probe, settings, 0)
    assert isinstance(session, NeuronSession)
    return session


def extracted(archive: Path, into: Path) -> Path:
    with tarfile.open(str(archive)) as tar:
        tar.extractall(str(into))  # noqa: S202 (our own archive)
    return into


# --- eikit compile --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "generation, module, package", [("inf1", "torch_neuron", "torch-neuron"),
                                    ("inf2", "torch_neuronx", "torch-neuronx")]
)  # fmt: skip
def test_compile_makes_a_checked_archive_for_each_generation(
    standins: Any, model: Path, tmp_path: Path, generation: str, module: str, package: str
) -> None:
    source = archive_of(model, tmp_path / "model.tar.gz")
    output, entry = compile_archive(request(source, generation, [1, 4, 8]))
    assert output == tmp_path / ("model-%s.tar.gz" % generation)
    # one trace per batch size, through the generation's package, with the example's rows
    assert [(c["module"], c["shapes"], c["dtypes"]) for c in standins.calls] == [
        (module, [[b, 4]], ["float32"]) for b in (1, 4, 8)
    ]
    assert names(output) == sorted(
        ["code/inference.py", MANIFEST_NAME, "model.pt", "neuron/%s/parity.npz" % generation]
        + ["neuron/%s/model-b%d.pt" % (generation, b) for b in (1, 4, 8)]
    )
    manifest = read_manifest(extracted(output, tmp_path / "out"))
    assert manifest is not None and set(manifest.compiled) == {generation}
    compiled = manifest.compiled[generation]
    assert compiled.batch_sizes == [1, 4, 8] and compiled.package == package
    assert compiled.inputs[0].shape == [4] and compiled.inputs[0].dtype == "float32"
    assert compiled.package_version.endswith("+standin")
    assert compiled.compiler_version.endswith("+standin")
    assert compiled.framework_version == torch.__version__
    assert compiled.parity["checked"] and compiled.parity["max_abs_error"] < 1e-5
    assert compiled.parity["batches"] == [1, 2, 3, 4, 5, 7, 8, 9, 17]
    # the original code/ is the same bytes
    assert (tmp_path / "out" / "code" / "inference.py").read_text() == (
        model / "code" / "inference.py"
    ).read_text()


def test_parity_of_each_compiled_artifact_across_batch_sizes_padding_removed(
    standins: Any, model: Path, tmp_path: Path
) -> None:
    output, _ = compile_archive(request(model, "inf1", [1, 4, 8], output=tmp_path / "c.tar.gz"))
    folder = extracted(output, tmp_path / "served")
    session = neuron_session("inf1")
    compiled = session.model_fn(folder)
    original = torch.jit.load(str(model / "model.pt"))
    rng = np.random.default_rng(1)
    for records in range(1, 21):  # each size, padded sizes, and split into chunks
        rows = rng.standard_normal((records, 4)).astype(np.float32)
        got = session.predict(compiled, rows)
        with torch.no_grad():
            want = original(torch.from_numpy(rows)).numpy()
        assert got.shape == (records, 3)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # each graph alone takes only its own batch size (as a compiled graph does)
    with pytest.raises(torch.jit.Error, match="compiled for input shape \\[4, 4\\]"):
        compiled.graphs[4](torch.zeros(3, 4))


def test_split_off_refuses_a_batch_larger_than_every_size(
    standins: Any, model: Path, tmp_path: Path
) -> None:
    output, _ = compile_archive(request(model, "inf2", [2, 4], output=tmp_path / "c.tar.gz"))
    folder = extracted(output, tmp_path / "served")
    session = neuron_session("inf2", split=False)
    compiled = session.model_fn(folder)
    assert session.predict(compiled, np.ones((4, 4), np.float32)).shape == (4, 3)
    with pytest.raises(BatchTooLarge, match="5 records.*batch sizes 2, 4"):
        session.predict(compiled, np.ones((5, 4), np.float32))
    with pytest.raises(BadRequest, match="compiled \\(for inf2\\) for \\[N, 4\\] float32"):
        session.predict(compiled, np.ones((2, 5), np.float32))


def test_a_compiler_that_answers_wrongly_fails_the_compile_and_writes_nothing(
    standins: Any, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EIKIT_STANDIN_PERTURB", "0.5")
    with pytest.raises(ConfigurationError) as caught:
        compile_archive(request(model, "inf1", [1, 4], output=tmp_path / "bad.tar.gz"))
    assert "does not answer as the original does (rtol 0.02, atol 0.001)" in str(caught.value)
    assert "max abs error 0.5" in str(caught.value)
    assert not (tmp_path / "bad.tar.gz").exists()
    assert list(tmp_path.glob(".eikit-compile-*")) == []


def test_compiling_both_generations_into_one_archive(
    standins: Any, model: Path, tmp_path: Path
) -> None:
    first, _ = compile_archive(request(model, "inf1", [1], output=tmp_path / "one.tar.gz"))
    both, _ = compile_archive(request(first, "inf2", [1, 2], output=tmp_path / "two.tar.gz"))
    manifest = read_manifest(extracted(both, tmp_path / "both"))
    assert manifest is not None and sorted(manifest.compiled) == ["inf1", "inf2"]
    assert manifest.compiled["inf2"].batch_sizes == [1, 2]


def test_compile_from_shapes_and_a_multi_record_example(
    standins: Any, model: Path, tmp_path: Path
) -> None:
    output, entry = compile_archive(
        request(model, "inf2", None, example=from_shapes(["3x4"], ["float32"]),  # type: ignore[arg-type]
                output=tmp_path / "s.tar.gz")
    )  # fmt: skip
    assert entry.batch_sizes == [3]  # default: the example's own batch
    assert standins.calls[0]["shapes"] == [[3, 4]]


def test_where_the_graphs_cannot_run_the_check_is_left_to_the_device(
    standins: Any, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real compiled graphs need a NeuronCore: compiled on a CPU host, they are checked
    when the server loads them on the device. Seam: loading the saved graphs fails here
    as it would without a device."""
    real = compiling_module.load_compiled

    def no_device(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("nrt_init: no Neuron device found")

    monkeypatch.setattr(compiling_module, "load_compiled", no_device)
    output, entry = compile_archive(
        request(model, "inf1", [1, 4], output=tmp_path / "d.tar.gz", device_root=tmp_path)
    )
    assert not entry.parity["checked"] and "no Neuron device found" in entry.parity["reason"]
    monkeypatch.setattr(compiling_module, "load_compiled", real)
    folder = extracted(output, tmp_path / "served")
    session = neuron_session("inf1")
    loaded = session.model_fn(folder)  # checks parity now, on "the device": passes
    assert session.predict(loaded, np.ones((3, 4), np.float32)).shape == (3, 3)
    # the stored answers no longer match the graphs: the load refuses
    data = dict(np.load(str(folder / "neuron" / "inf1" / "parity.npz")))
    data["expected0"] = data["expected0"] + 1.0
    np.savez(str(folder / "neuron" / "inf1" / "parity.npz"), **data)
    with pytest.raises(ConfigurationError, match="do not answer as the original did"):
        neuron_session("inf1").model_fn(folder)


def test_an_uncompiled_model_is_refused_with_the_exact_compile_command(
    standins: Any, model: Path, tmp_path: Path
) -> None:
    with pytest.raises(NotCompiled) as caught:
        neuron_session("inf1").model_fn(model)
    assert (
        "eikit compile %s --generation inf1 --example REQUEST.json --output model-inf1.tar.gz"
        % model
    ) in str(caught.value)
    output, _ = compile_archive(request(model, "inf2", [1], output=tmp_path / "x.tar.gz"))
    folder = extracted(output, tmp_path / "inf2-only")
    with pytest.raises(NotCompiled, match="compiled for inf2 only"):
        neuron_session("inf1").model_fn(folder)


def test_the_compile_command_line(standins: Any, model: Path, tmp_path: Path) -> None:
    (tmp_path / "request.npy").write_bytes(npy(np.ones((2, 4), np.float32)))
    out = tmp_path / "cli.tar.gz"
    code = main(["compile", str(model), "--instance-type", "ml.inf1.xlarge",
                 "--example", str(tmp_path / "request.npy"), "--batch-sizes", "1,2",
                 "--output", str(out), "--in-process"])  # fmt: skip
    assert code == 0 and out.is_file()
    assert [c["shapes"] for c in standins.calls] == [[[1, 4]], [[2, 4]]]
    assert main(["compile", str(model), "--instance-type", "ml.c5.xlarge", "--shape", "1x4"]) == 2
    assert main(["compile", str(tmp_path / "nope"), "--generation", "inf1", "--shape", "1x4"]) == 2


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
