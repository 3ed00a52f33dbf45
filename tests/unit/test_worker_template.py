"""The template's parts that need no framework: which model paths shadow its packages,
exit codes as Popen reports them, what it says it imported, the setting, and the template
``serve`` starts early (started, handed out once, discarded)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator

import pytest

from eikit.server import early_template
from eikit.server.forkserver import exit_code, loaded_packages
from eikit.server.template import shadowing
from eikit.settings import Settings


def test_shadowing_finds_a_package_module_or_extension_of_the_templates(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helpers.py").write_text("")
    (lib / "numpy_tools").mkdir()  # a prefix of a name is not the name
    assert shadowing([None, tmp_path / "missing", lib], ["numpy", "torch"]) is None
    (lib / "torch").mkdir()
    assert shadowing([lib], ["numpy", "torch"]) == "torch in %s" % lib
    for entry in ("numpy.py", "numpy.cpython-311-x86_64-linux-gnu.so"):
        other = tmp_path / entry.replace(".", "_")
        other.mkdir()
        (other / entry).write_text("")
        assert shadowing([other], ["numpy"]) == "numpy in %s" % other
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "numpy-1.26.4.dist-info").mkdir()  # metadata alone imports nothing
    assert shadowing([dist], ["numpy"]) is None


def _child_status(code: int, sig: int = 0) -> int:
    pid = os.fork()
    if pid == 0:
        if sig:
            os.kill(os.getpid(), sig)
        os._exit(code)
    return os.waitpid(pid, 0)[1]


def test_exit_codes_read_as_popen_reads_them() -> None:
    assert exit_code(_child_status(3)) == 3
    assert exit_code(_child_status(0, signal.SIGKILL)) == -signal.SIGKILL


def test_loaded_packages_names_installed_packages_not_pythons_own() -> None:
    names = loaded_packages()
    assert "pytest" in names and "eikit" in names
    assert "os" not in names and "json" not in names and "eikit.server" not in names


def test_worker_start_setting() -> None:
    assert Settings().worker_start == "fork"
    assert Settings(EIKIT_WORKER_START=" Spawn ").worker_start == "spawn"
    with pytest.raises(ValueError, match="fork, spawn"):
        Settings(EIKIT_WORKER_START="thread")


def test_serve_starts_a_template_early_unless_the_environment_rules_it_out() -> None:
    assert early_template.wanted({})
    assert early_template.wanted({"EIKIT_WORKER_START": "fork", "SAGEMAKER_MULTI_MODEL": "0"})
    assert not early_template.wanted({"EIKIT_WORKER_START": " Spawn "})
    for value in ("true", "TRUE", "1", "yes"):
        assert not early_template.wanted({"SAGEMAKER_MULTI_MODEL": value})
        assert Settings(SAGEMAKER_MULTI_MODEL=value).multi_model  # as the settings read it


@pytest.fixture
def started_early(monkeypatch: pytest.MonkeyPatch) -> Iterator[early_template.Early]:
    """A template started early, as ``serve`` starts it, and not yet taken; it is gone
    afterwards whatever the test did."""
    monkeypatch.delenv("EIKIT_WORKER_START", raising=False)
    monkeypatch.delenv("SAGEMAKER_MULTI_MODEL", raising=False)
    early_template.discard()
    early_template.start()
    assert early_template._early is not None
    yield early_template._early
    early_template.discard()


def test_an_early_template_nobody_takes_is_killed_and_reaped(
    started_early: early_template.Early,
) -> None:
    process, control = started_early
    assert process.poll() is None  # waiting for its init line
    early_template.discard()
    assert process.returncode is not None and control.fileno() == -1
    assert early_template.take() is None


def test_a_template_whose_frontend_never_sends_init_leaves_quietly(
    capfd: pytest.CaptureFixture[str],
) -> None:
    process, control = early_template.spawn()
    control.close()  # as the frontend's exit would, before any init line
    assert process.wait(timeout=60) == 0
    assert capfd.readouterr().err == ""  # no traceback for a template nobody wanted


def test_a_dead_early_template_is_not_handed_out(started_early: early_template.Early) -> None:
    process = started_early[0]
    process.kill()
    process.wait()
    assert early_template.take() is None  # Template._start spawns a new one instead


def test_spawn_setting_starts_no_early_template(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EIKIT_WORKER_START", "spawn")
    early_template.discard()
    early_template.start()
    assert early_template.take() is None
