"""What a multi-model endpoint's models may hold, and what they do hold: the caps that
``eviction.plan`` works against, the measurements it works with, and the checks of a load
request's ``url``. The blocking parts (``/proc``, ``nvidia-smi``, walking a model's files)
run in threads, never on the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from eikit import gpu_memory, logs
from eikit.errors import BadRequest, ModelNotFound
from eikit.procs import groups_members, memory_limit_bytes, pss_bytes
from eikit.server.http import FD_PER_WORKER, FD_RESERVE, REJECT_LINGER
from eikit.settings import Settings

log = logging.getLogger("eikit.server.models")

MB = 1024 * 1024
DEFAULT_MEMORY_SHARE = 0.85  # of the container's limit, when EIKIT_MODELS_MEMORY_MB is unset
DEFAULT_GPU_SHARE = 0.9  # of the GPUs' memory, when EIKIT_MODELS_GPU_MEMORY_MB is unset
MAX_URL = 4096
WALK_LIMIT = 100_000  # files a first size estimate reads at most
WORKERS_WANTED = 1024  # workers a multi-model endpoint raises its open-files limit for


def memory_cap(settings: Settings) -> Optional[int]:
    if settings.models_memory_mb is not None:
        return int(settings.models_memory_mb * MB)
    limit = memory_limit_bytes(settings.cgroup_root)
    return int(limit * DEFAULT_MEMORY_SHARE) if limit else None


def gpu_cap(settings: Settings) -> Optional[int]:
    """Blocking (``nvidia-smi``): call in a thread."""
    if settings.models_gpu_memory_mb is not None:
        return int(settings.models_gpu_memory_mb * MB)
    total = gpu_memory.total_memory()
    return int(total * DEFAULT_GPU_SHARE) if total else None


def worker_budget(settings: Settings) -> Optional[int]:
    """Worker processes the open-files limit leaves room for once client connections have
    ``EIKIT_MAX_CONNECTIONS`` descriptors (each worker costs the frontend FD_PER_WORKER).
    The soft limit is first raised toward the hard one, as far as that many workers need:
    every model brings workers, and a limit fitted to one model's would refuse connections
    or workers soon. None: no limit."""
    try:
        import resource
    except ImportError:
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    fixed = settings.max_connections + FD_RESERVE + REJECT_LINGER
    wanted = fixed + FD_PER_WORKER * WORKERS_WANTED
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard > soft):
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            log.info("open-files limit raised from %d to %d for the models' workers", soft, raised)
            soft = raised
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open-files limit from %d: %s", soft, exc)
    return max(0, (soft - fixed) // FD_PER_WORKER)


def measure(groups: Sequence[Sequence[int]], gpu: bool) -> List[Tuple[int, int]]:
    """(host bytes, GPU bytes) held by each group of worker pids and their children: the
    proportional set size, and what ``nvidia-smi`` lists for those processes."""
    members = groups_members(groups)
    on_gpu = gpu_memory.process_memory() if gpu else {}
    return [
        (sum(pss_bytes(pid) for pid in group), sum(on_gpu.get(pid, 0) for pid in group))
        for group in members
    ]


def model_path(settings: Settings, url: str) -> Path:
    """The folder a load request names, refused (400) unless it lies in the models root.
    The check is on the normalised path, so ``..`` cannot leave the root; links inside the
    root are the operator's (SageMaker's) and followed."""
    if len(url) > MAX_URL or "\x00" in url:
        raise BadRequest('"url" must be a path of at most %d characters' % MAX_URL)
    root = os.path.normpath(os.path.abspath(str(settings.models_dir)))
    path = os.path.normpath(os.path.join(root, url))
    if os.path.commonpath([root, path]) != root or path == root:
        raise BadRequest(
            "url %s is not in the models folder %s (EIKIT_MODELS_ROOT)"
            % (logs.printable(url)[:300], root)
        )
    return Path(path)


def check_model_dir(path: Path, size_wanted: bool) -> int:
    """404 unless ``path`` is a folder with something in it; its files' size when
    ``size_wanted`` (the first model's estimate), read from at most WALK_LIMIT files.
    Blocking: call in a thread."""
    shown = logs.printable(str(path))[:300]
    try:
        if not path.is_dir():
            raise ModelNotFound("no model directory at %s" % shown)
        if not any(path.iterdir()):
            raise ModelNotFound("model directory %s is empty" % shown)
    except OSError as exc:
        raise ModelNotFound("model directory %s cannot be read: %s" % (shown, exc)) from None
    if not size_wanted:
        return 0
    total = files = 0
    for root, _dirs, names in os.walk(str(path)):
        for name in names:
            files += 1
            if files > WALK_LIMIT:
                return total
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total
