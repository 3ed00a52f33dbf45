"""GPU memory as NVIDIA's driver reports it, without importing a framework: ``nvidia-smi``'s
per-process usage (what each model's workers hold on the GPUs) and the GPUs' total.

Used by the multi-model registry where models run on CUDA; every function answers {} or
None where ``nvidia-smi`` is missing or fails, so a machine without a GPU measures nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Dict, List, Optional

MB = 1024 * 1024
QUERY_TIMEOUT = 10.0


def _query(arguments: List[str]) -> Optional[str]:
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [binary, *arguments, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_process_memory(text: str) -> Dict[int, int]:
    """``pid, used_memory`` lines (MiB) -> bytes per pid; a process on several GPUs is
    summed; lines that do not parse (``[N/A]``) are skipped."""
    usage: Dict[int, int] = {}
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit():
            continue
        pid = int(fields[0])
        usage[pid] = usage.get(pid, 0) + int(fields[1]) * MB
    return usage


def parse_total(text: str) -> Optional[int]:
    """``memory.total`` lines (MiB, one per GPU) -> bytes over every GPU."""
    sizes = [int(line.strip()) for line in text.splitlines() if line.strip().isdigit()]
    return sum(sizes) * MB if sizes else None


def process_memory() -> Dict[int, int]:
    """Bytes of GPU memory each process holds."""
    text = _query(["--query-compute-apps=pid,used_memory"])
    return parse_process_memory(text) if text is not None else {}


def total_memory() -> Optional[int]:
    """Bytes of memory of every GPU together; None without a GPU."""
    text = _query(["--query-gpu=memory.total"])
    return parse_total(text) if text is not None else None
