"""eikit.images.container without an engine: mounts and the environment passed through."""

from __future__ import annotations

from pathlib import Path

import pytest

from eikit.images.container import (
    MODEL_MOUNT,
    ContainerEndpoint,
    ContainerError,
    model_mounts,
    passthrough_env,
)


def targets(mounts):
    return {m["Target"]: m["Source"] for m in mounts}


def test_model_folder_alone_is_one_read_only_mount(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"x")
    mounts = model_mounts(tmp_path, None)
    assert mounts == [
        {"Type": "bind", "Source": str(tmp_path.resolve()), "Target": MODEL_MOUNT, "ReadOnly": True}
    ]


def test_code_folder_over_an_existing_code_folder(tmp_path: Path) -> None:
    model, code = tmp_path / "model", tmp_path / "src"
    (model / "code").mkdir(parents=True)
    code.mkdir()
    mounts = model_mounts(model, code, tmp_path / "staging")
    assert targets(mounts) == {MODEL_MOUNT: str(model), MODEL_MOUNT + "/code": str(code)}
    assert not (tmp_path / "staging").exists()


def test_code_folder_without_one_in_the_model_uses_stand_ins(tmp_path: Path) -> None:
    model, code, staging = tmp_path / "model", tmp_path / "src", tmp_path / "staging"
    (model / "weights").mkdir(parents=True)
    (model / "model.pt").write_bytes(b"x")
    (model / "link.pt").symlink_to(model / "model.pt")
    (model / "dangling").symlink_to(tmp_path / "nowhere")
    code.mkdir()
    mounts = model_mounts(model, code, staging)
    assert all(m["ReadOnly"] for m in mounts)
    assert targets(mounts) == {
        MODEL_MOUNT: str(staging),
        MODEL_MOUNT + "/weights": str(model / "weights"),
        MODEL_MOUNT + "/model.pt": str(model / "model.pt"),
        MODEL_MOUNT + "/link.pt": str(model / "model.pt"),  # links resolved on the host
        MODEL_MOUNT + "/code": str(code),
    }
    # Mount points exist in the staging folder; the user's folder is untouched.
    assert (staging / "code").is_dir() and (staging / "weights").is_dir()
    assert (staging / "model.pt").is_file() and (staging / "model.pt").stat().st_size == 0
    assert sorted(p.name for p in model.iterdir()) == ["dangling", "link.pt", "model.pt", "weights"]


def test_missing_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ContainerError, match="model folder"):
        model_mounts(tmp_path / "nope", None)
    with pytest.raises(ContainerError, match="code folder"):
        model_mounts(tmp_path, tmp_path / "nope", tmp_path / "staging")


def test_passthrough_env_keeps_sagemaker_and_eikit_settings() -> None:
    environ = {"SAGEMAKER_PROGRAM": "x.py", "EIKIT_ACCELERATOR": "cpu", "HOME": "/root"}
    assert passthrough_env(environ) == {"SAGEMAKER_PROGRAM": "x.py", "EIKIT_ACCELERATOR": "cpu"}


def test_endpoint_url_and_stop_before_start(tmp_path: Path) -> None:
    endpoint = ContainerEndpoint("eikit:x", tmp_path, port=18080)
    assert endpoint.url == "http://127.0.0.1:18080"
    assert endpoint.stop() is None
    assert endpoint.logs() == ""
