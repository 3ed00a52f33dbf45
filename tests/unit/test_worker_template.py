"""The template's parts that need no framework: which model paths shadow its packages,
exit codes as Popen reports them, what it says it imported, and the setting."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

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
