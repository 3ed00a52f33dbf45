"""Install ``code/requirements.txt`` before the user script is imported.

pip runs with a constraints file that pins what eikit runs on, as installed: eikit's own
dependencies (pydantic, uvicorn, numpy, ...), the framework (torch, ...) and everything those
need. A requirement that would replace one of them (``numpy==1.0``, ``pydantic<2``, or a
package that needs them at other versions) makes pip fail, and the error names the package,
instead of the server starting on a broken environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from eikit.errors import ConfigurationError

log = logging.getLogger(__name__)

# What eikit runs on: its own distribution and the frameworks its runtimes load (the EI and
# Neuron builds included), each with everything it requires.
ROOTS = (
    "eikit",
    "torch",
    "torcheia",
    "torch-neuron",
    "torch-neuronx",
    "tensorflow",
    "tensorflow-cpu",
    "mxnet",
    "eimx",
)
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""\bextra\s*==""")
_PINNED = re.compile(r"The user requested \(constraint\) ([A-Za-z0-9._-]+)")
_MISSING = re.compile(
    r"(?:No matching distribution found for|Could not find a version that satisfies the "
    r"requirement) ([^\s(]+)"
)
KEEP_LINES = 400  # pip output kept for the error message


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def protected_pins(roots: Iterable[str] = ROOTS) -> Dict[str, str]:
    """``{name: "name==version"}`` for every installed distribution among ``roots`` and all
    they require (extras left out; other markers are not evaluated, so a package required
    only on another platform is pinned if it happens to be installed, which is harmless)."""
    installed: Dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            installed.setdefault(canonical(name), dist)  # first on sys.path wins, as imports do
    pins: Dict[str, str] = {}
    pending = [canonical(root) for root in roots]
    while pending:
        name = pending.pop()
        found = installed.get(name)
        if name in pins or found is None:
            continue
        pins[name] = "%s==%s" % (name, found.version)
        for requirement in found.requires or []:
            match = _NAME.match(requirement)
            if match and not _EXTRA.search(requirement):
                pending.append(canonical(match.group(1)))
    return pins


def pip_command(requirements: Path, target: Optional[Path], constraints: Path) -> List[str]:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    command += ["--no-input", "-r", str(requirements), "-c", str(constraints)]
    if target is not None:
        command += ["--target", str(target), "--upgrade"]
    return command


def explain_failure(output: List[str], pins: Dict[str, str]) -> str:
    """Why pip failed, naming the package(s), from its output."""
    text = "\n".join(output)
    replaced = sorted({canonical(name) for name in _PINNED.findall(text)})
    if replaced:
        causes = [
            line.strip()
            for line in output
            if line.startswith("    ") and (" requested " in line or " depends on " in line)
        ]
        causes = [line for line in causes if "(constraint)" not in line][:5]
        return "it would replace %s, which eikit runs on (installed: %s)%s" % (
            ", ".join(replaced),
            ", ".join(pins.get(name, name) for name in replaced),
            "; pip: " + "; ".join(causes) if causes else "",
        )
    missing = sorted(set(_MISSING.findall(text)))
    if missing:
        return "pip found no distribution for %s" % ", ".join(missing)
    errors = [line.strip() for line in output if line.startswith("ERROR:")]
    return errors[-1] if errors else "see pip's output above"


async def install_requirements(
    code_dir: Path, target: Optional[Path], lib_replaces_requirements: bool = False
) -> None:
    """pip-install ``code_dir/requirements.txt`` if it exists, never replacing what eikit runs
    on; pip's output goes to our log.

    ``lib_replaces_requirements``: AWS's TensorFlow Serving container skips requirements.txt
    when ``code/lib`` exists (endpoints in network isolation vendor their packages there); its
    PyTorch and MXNet toolkits (sagemaker-inference) install it whenever it exists. Each
    runtime says which rule is its own (``Runtime.lib_replaces_requirements``)."""
    requirements = code_dir / "requirements.txt"
    if not requirements.is_file():
        return
    if lib_replaces_requirements and (code_dir / "lib").is_dir():
        log.warning("loading modules in %s, ignoring %s", code_dir / "lib", requirements)
        return
    pins = protected_pins()
    handle, constraints = tempfile.mkstemp(prefix="eikit-constraints-", suffix=".txt")
    try:
        with os.fdopen(handle, "w") as out:
            out.write("".join(pin + "\n" for pin in sorted(pins.values())))
        await _run_pip(requirements, pip_command(requirements, target, Path(constraints)), pins)
    finally:
        os.unlink(constraints)


async def _run_pip(requirements: Path, command: List[str], pins: Dict[str, str]) -> None:
    log.info("installing %s (%d installed packages protected)", requirements, len(pins))
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=str(requirements.parent),  # relative paths in requirements.txt are relative to code/
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: List[str] = []
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        log.info("pip: %s", line)
        output.append(line)
        del output[:-KEEP_LINES]
    code = await process.wait()
    if code != 0:
        raise ConfigurationError(
            "pip install -r %s failed (exit code %d): %s"
            % (requirements, code, explain_failure(output, pins))
        )
    log.info("requirements installed in %.1fs", time.monotonic() - started)
