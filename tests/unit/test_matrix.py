"""eikit.images.matrix: tags, build arguments, overrides and errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, List

import pytest

from eikit.images import matrix
from eikit.images.matrix import FRAMEWORKS, TARGETS, VARIANTS, image_spec

ROOT = Path(__file__).resolve().parents[2]


def test_every_framework_has_every_target_it_ran_on() -> None:
    # MXNet never ran on NeuronCore v2: no inf2 image; every other cell exists
    assert set(VARIANTS) == {(f, t) for f in FRAMEWORKS for t in TARGETS} - {("mxnet", "inf2")}


def test_a_combination_that_never_existed_is_refused_naming_what_works() -> None:
    with pytest.raises(ValueError) as caught:
        matrix.variant("mxnet", "inf2")
    text = str(caught.value)
    assert "MXNet never ran on NeuronCore v2" in text
    assert "mxnet on inf1 (frozen)" in text and "pytorch on inf2 (supported)" in text


def test_frozen_and_archived_neuron_stacks_carry_a_warning() -> None:
    assert matrix.caution("pytorch", "inf2") is None  # supported
    assert matrix.caution("pytorch", "cpu") is None
    inf1 = matrix.caution("pytorch", "inf1")
    assert inf1 is not None and "frozen" in inf1 and "What inf2 offers instead" in inf1
    assert "read 2026-12-06" in inf1  # the facts carry their date and source
    for target in ("inf1", "inf2"):
        text = matrix.caution("tensorflow", target)
        assert text is not None and "archived" in text
    assert "frozen" in (matrix.caution("mxnet", "inf1") or "")


@pytest.mark.parametrize(
    "framework, target, tag",
    [
        ("pytorch", "cpu", "pytorch-2.13-cpu-py311"),
        ("pytorch", "gpu", "pytorch-2.13-gpu-py312"),
        ("pytorch", "eia", "pytorch-1.5-eia-py38"),
        ("pytorch", "inf1", "pytorch-1.13-inf1-py310"),
        ("pytorch", "inf2", "pytorch-2.9-inf2-py312"),
        ("tensorflow", "inf1", "tensorflow-2.10-inf1-py310"),
        ("tensorflow", "inf2", "tensorflow-2.10-inf2-py310"),
        ("tensorflow", "cpu", "tensorflow-2.21-cpu-py311"),
        ("tensorflow", "eia", "tensorflow-2.0-eia-py38"),
        ("mxnet", "eia", "mxnet-1.7-eia-py38"),
        ("mxnet", "inf1", "mxnet-1.8-inf1-py38"),
    ],
)
def test_tags_say_framework_version_target_and_python(
    framework: str, target: str, tag: str
) -> None:
    assert image_spec(framework, target).tag == tag


def test_tags_are_unique_and_valid_docker_tags() -> None:
    tags = [image_spec(f, t).tag for f, t in VARIANTS]
    assert len(set(tags)) == len(tags)
    for tag in tags:
        assert re.fullmatch(r"[a-z]+-\d+\.\d+-(cpu|gpu|eia|inf1|inf2)-py3\d+", tag), tag


def test_eia_images_run_python_38() -> None:
    assert {image_spec(f, "eia").python for f in FRAMEWORKS} == {"3.8"}


def test_default_spec_passes_target_and_the_default_base() -> None:
    spec = image_spec("pytorch", "cpu")
    assert spec.build_args == {"TARGET": "cpu", "BASE_IMAGE": "python:3.11-slim-bookworm"}
    assert spec.dockerfile == "docker/pytorch/Dockerfile"
    assert Path(spec.context) == ROOT
    assert (Path(spec.context) / spec.dockerfile).is_file()
    assert (spec.framework, spec.target, spec.python) == ("pytorch", "cpu", "3.11")
    assert (spec.framework_version, spec.base_image) == ("2.13.0", "python:3.11-slim-bookworm")


def test_base_image_override() -> None:
    spec = image_spec("pytorch", "cpu", base_image="eikit-base:bookworm")
    assert spec.build_args["BASE_IMAGE"] == "eikit-base:bookworm"
    assert spec.base_image == "eikit-base:bookworm"
    assert spec.tag == "pytorch-2.13-cpu-py311"


def test_wheelhouse_is_passed_relative_to_the_context(tmp_path: Path) -> None:
    (tmp_path / ".wheelhouse").mkdir()
    relative = image_spec("pytorch", "cpu", wheelhouse=".wheelhouse", context=tmp_path)
    absolute = image_spec("pytorch", "cpu", wheelhouse=tmp_path / ".wheelhouse", context=tmp_path)
    assert relative.build_args["WHEELHOUSE"] == absolute.build_args["WHEELHOUSE"] == ".wheelhouse"
    assert relative.context == str(tmp_path)
    assert "WHEELHOUSE" not in image_spec("pytorch", "cpu", context=tmp_path).build_args


def test_offline_ci_build_args(tmp_path: Path) -> None:
    (tmp_path / "wheels" / "py311").mkdir(parents=True)
    spec = image_spec(
        "pytorch",
        "cpu",
        base_image="eikit-base:bookworm",
        wheelhouse="wheels/py311",
        context=tmp_path,
    )
    assert spec.build_args == {
        "TARGET": "cpu",
        "BASE_IMAGE": "eikit-base:bookworm",
        "WHEELHOUSE": "wheels/py311",
    }


def test_wheelhouse_outside_the_context_or_missing_is_an_error(tmp_path: Path) -> None:
    context = tmp_path / "repo"
    context.mkdir()
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ValueError, match="outside the build context"):
        image_spec("pytorch", "cpu", wheelhouse=tmp_path / "elsewhere", context=context)
    with pytest.raises(ValueError, match="not a directory"):
        image_spec("pytorch", "cpu", wheelhouse="nope", context=context)
    with pytest.raises(ValueError, match="context itself"):
        image_spec("pytorch", "cpu", wheelhouse=".", context=context)


def test_extra_args_must_be_declared_by_the_dockerfile() -> None:
    spec = image_spec(
        "pytorch", "gpu", extra_args={"TORCH_INDEX_URL": "https://mirror/whl", "EIKIT_UID": "1000"}
    )
    assert spec.build_args["TORCH_INDEX_URL"] == "https://mirror/whl"
    assert spec.build_args["EIKIT_UID"] == "1000"
    with pytest.raises(ValueError, match="TORCH_INDEX_URL"):
        image_spec("tensorflow", "cpu", extra_args={"TORCH_INDEX_URL": "x"})
    with pytest.raises(ValueError, match="target is chosen"):
        image_spec("pytorch", "cpu", extra_args={"TARGET": "gpu"})


@pytest.mark.parametrize(
    "framework, target, message",
    [
        ("jax", "cpu", "unknown framework 'jax'; choose one of: pytorch, tensorflow, mxnet"),
        ("pytorch", "tpu", "unknown target 'tpu'; choose one of: cpu, gpu, eia, inf1, inf2"),
        ("PyTorch", "cpu", "unknown framework"),
    ],
)
def test_unknown_names_are_clear_errors(framework: str, target: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        image_spec(framework, target)


def test_spec_is_frozen() -> None:
    spec = image_spec("mxnet", "cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tag = "other"  # type: ignore[misc]


def test_build_args_name_every_framework() -> None:
    assert set(matrix.BUILD_ARGS) == set(FRAMEWORKS)


def test_eikit_build_refuses_what_never_existed_and_warns_of_frozen_stacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from eikit.cli import main
    from eikit.images import build

    built: List[Any] = []

    def fake_build(spec: object, tags: object, **kwargs: object) -> build.BuildResult:
        built.append(spec)
        return build.BuildResult("sha256:" + "0" * 64, ["eikit:x"], 1.0, 1, 0)

    monkeypatch.setattr(build, "build_image", fake_build)
    assert main(["build", "--framework", "mxnet", "--target", "inf2"]) == 2
    err = capsys.readouterr().err
    assert "MXNet never ran on NeuronCore v2" in err and not built
    assert main(["build", "--framework", "pytorch", "--target", "inf1", "--no-pull"]) == 0
    err = capsys.readouterr().err
    assert "eikit build: warning: pytorch on inf1 is frozen" in err
    assert [s.tag for s in built] == ["pytorch-1.13-inf1-py310"]
    assert main(["build", "--framework", "pytorch", "--target", "inf2", "--no-pull"]) == 0
    assert "warning" not in capsys.readouterr().err
