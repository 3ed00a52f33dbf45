"""code/requirements.txt cannot replace what eikit runs on; a failure names the package.

pip really runs here, on wheels built by the test (--no-index: nothing is downloaded), and
always with --target into a temporary folder, so even a broken guard could not touch the
environment the tests run in.
"""

from __future__ import annotations

import asyncio
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from eikit.errors import ConfigurationError
from eikit.requirements import explain_failure, install_requirements, protected_pins


def _wheel(folder: Path, name: str, version: str = "1.0", requires=()) -> Path:
    """A minimal pure-Python wheel, built by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = "%s-%s" % (name, version)
    path = folder / ("%s-py3-none-any.whl" % dist)
    meta = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    meta += "".join("Requires-Dist: %s\n" % requirement for requirement in requires)
    with zipfile.ZipFile(str(path), "w") as wheel:
        wheel.writestr("%s.py" % name, "ANSWER = 42\n")
        wheel.writestr("%s.dist-info/METADATA" % dist, meta)
        wheel.writestr(
            "%s.dist-info/WHEEL" % dist,
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr("%s.dist-info/RECORD" % dist, "")
    return path


def _install(tmp_path: Path, *lines: str) -> Path:
    code = tmp_path / "code"
    _wheel(code / "wheels", "pydantic", "1.0")  # an old "pydantic" that would replace ours
    _wheel(code / "wheels", "numpy", "0.9")
    _wheel(code / "wheels", "needs_old_numpy", requires=["numpy<1"])
    _wheel(code / "wheels", "eikit_probe")
    (code / "requirements.txt").write_text(
        "--no-index\n--find-links ./wheels\n" + "".join(line + "\n" for line in lines)
    )
    target = tmp_path / "site"
    asyncio.run(install_requirements(code, target))
    return target


def test_pins_cover_eikit_its_dependencies_and_the_framework():
    pins = protected_pins()
    for name in ("eikit", "pydantic", "pydantic-settings", "pydantic-core", "uvicorn", "numpy"):
        assert pins[name] == "%s==%s" % (name, metadata.version(name))
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = None
    if torch is not None:
        assert pins["torch"] == "torch==" + torch
    assert "pytest" not in pins  # only what eikit runs on, not everything installed


def test_a_requirement_that_fits_is_installed(tmp_path):
    target = _install(tmp_path, "eikit_probe")
    assert (target / "eikit_probe.py").is_file()


@pytest.mark.parametrize(
    "line, named",
    [
        ("pydantic<2", "pydantic"),  # asks to replace it
        ("numpy==0.9", "numpy"),
        ("needs_old_numpy", "numpy"),  # needs it replaced
    ],
)
def test_a_requirement_that_would_replace_eikits_own_fails_naming_it(tmp_path, line, named):
    with pytest.raises(ConfigurationError) as failure:
        _install(tmp_path, "eikit_probe", line)
    message = str(failure.value)
    assert "would replace %s, which eikit runs on" % named in message
    assert "%s==%s" % (named, metadata.version(named)) in message
    assert not (tmp_path / "site" / "eikit_probe.py").exists()  # nothing half-installed


def test_a_missing_package_is_named(tmp_path):
    with pytest.raises(ConfigurationError, match="no distribution for eikit-nowhere==3"):
        _install(tmp_path, "eikit-nowhere==3")


def test_failure_explanations_from_pip_output():
    conflict = [
        "ERROR: Cannot install -r requirements.txt (line 1) because these package versions "
        "have conflicting dependencies.",
        "",
        "The conflict is caused by:",
        "    old-thing 1.0 depends on NumPy<1",
        "    The user requested (constraint) NumPy==1.26.4",
    ]
    reason = explain_failure(conflict, {"numpy": "numpy==1.26.4"})
    assert reason.startswith("it would replace numpy, which eikit runs on (installed: numpy==")
    assert "old-thing 1.0 depends on NumPy<1" in reason
    assert explain_failure(["ERROR: something else"], {}) == "ERROR: something else"
