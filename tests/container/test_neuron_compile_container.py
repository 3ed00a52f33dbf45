"""`eikit compile --docker`: the compile runs inside an image, on the mounted model folder.

The generation's real image (torch-neuron or torch-neuronx inside) cannot be built here: AWS's
Neuron repositories are unreachable. The pytorch cpu image stands in for it, with the
stand-in ``torch_neuron`` mounted and on its PYTHONPATH, and this checkout's ``src`` and
``handlers`` mounted in front of the image's own eikit (so the image need not be rebuilt for
the code under test). What runs in the container is the real `eikit compile --in-process
--in-place`; the mounts, the user, the network, the log streaming and the manifest handover
are the real ones.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any, List

import pytest

from eikit.compile.example import Example
from eikit.compile.request import CompileRequest
from eikit.compile.run import compile_archive
from eikit.neuron.manifest import read_manifest
from tests.container.conftest import ROOT, save_linear_model

pytestmark = pytest.mark.container

STANDINS = ROOT / "tests" / "pytorch" / "fakes"


def test_compile_in_an_image_writes_a_checked_archive(
    engine: Any, pytorch_cpu_image: str, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    save_linear_model(model / "model.pt")
    lines: List[str] = []
    request = CompileRequest(
        source=model,
        generation="inf1",
        example=Example(body=b"[[1, 2, 3, 4]]", content_type="application/json"),
        batch_sizes=[1, 4],
        output=tmp_path / "model-inf1.tar.gz",
        where="docker",
        image=pytorch_cpu_image,
        docker_mounts={
            str(STANDINS): "/standins",
            str(ROOT / "src"): "/eikit-src/src",
            str(ROOT / "handlers"): "/eikit-src/handlers",
        },
        docker_env={"PYTHONPATH": "/eikit-src/src:/eikit-src/handlers:/standins"},
        progress=lines.append,
    )
    output, entry = compile_archive(request)
    assert output is not None and output.is_file()
    assert entry.batch_sizes == [1, 4] and entry.parity["checked"]
    log = "\n".join(lines)
    assert (
        "docker: %s eikit compile /eikit-compile/model --generation inf1" % pytorch_cpu_image in log
    )
    assert "[container] compiled batch size 4 for inf1 with torch_neuron.trace" in log
    with tarfile.open(str(output)) as tar:
        tar.extractall(str(tmp_path / "out"))  # noqa: S202 (our own archive)
    manifest = read_manifest(tmp_path / "out")
    assert manifest is not None and list(manifest.compiled) == ["inf1"]
    assert sorted(p.name for p in (tmp_path / "out" / "neuron" / "inf1").iterdir()) == [
        "model-b1.pt",
        "model-b4.pt",
        "parity.npz",
    ]
    # the user's folder is untouched
    assert sorted(p.name for p in model.iterdir()) == ["model.pt"]
