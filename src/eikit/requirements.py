"""Install ``code/requirements.txt`` before the user script is imported."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

from eikit.errors import ConfigurationError

log = logging.getLogger(__name__)


def pip_command(requirements: Path, target: Optional[Path]) -> List[str]:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    command += ["--no-input", "-r", str(requirements)]
    if target is not None:
        command += ["--target", str(target), "--upgrade"]
    return command


async def install_requirements(code_dir: Path, target: Optional[Path]) -> None:
    """pip-install ``code_dir/requirements.txt`` if it exists; its output goes to our log."""
    requirements = code_dir / "requirements.txt"
    if not requirements.is_file():
        return
    command = pip_command(requirements, target)
    log.info("installing %s", requirements)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=str(code_dir),  # relative paths in requirements.txt are relative to code/
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    async for line in process.stdout:
        log.info("pip: %s", line.decode(errors="replace").rstrip())
    code = await process.wait()
    if code != 0:
        raise ConfigurationError(
            "pip install -r %s failed with exit code %d" % (requirements, code)
        )
    log.info("requirements installed in %.1fs", time.monotonic() - started)
