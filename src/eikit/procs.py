"""Processes and memory as Linux reports them (``/proc``, cgroups): the process tree under a
pid, how much memory a set of processes holds, and how much the machine or container has.

Used by the multi-model registry to measure what each loaded model costs (not guess it),
and by the reliability harness. Everything returns 0 or {} where ``/proc`` is missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set


def _parents() -> Dict[int, int]:
    """pid -> parent pid for every live process (Linux /proc); {} elsewhere."""
    found = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry)] = int(fields[1])
    return found


def children(pid: int) -> List[int]:
    return sorted(child for child, parent in _parents().items() if parent == pid)


def tree(pid: int) -> List[int]:
    """``pid`` and every process below it."""
    parents = _parents()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return found


# The template process that forked workers come from runs ``python -m`` this module
# (EIKIT_WORKER_START=fork; eikit.server.template).
TEMPLATE_MODULE = "eikit.server.forkserver"


def is_template(pid: int) -> bool:
    """``pid`` runs a server's template process. Its forked workers keep its command
    line, so only a template's parent can tell: ask of a server's children."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            return TEMPLATE_MODULE.encode() in cmdline.read().split(b"\0")
    except OSError:
        return False


def template_pids(server: int) -> List[int]:
    """The template process of the server ``server`` (none where workers are spawned)."""
    return [pid for pid in children(server) if is_template(pid)]


def worker_pids(server: int) -> List[int]:
    """The worker processes of the server ``server``: its children, or its template's."""
    found: List[int] = []
    for pid in children(server):
        found.extend(children(pid) if is_template(pid) else [pid])
    return sorted(found)


def _kib_field(path: str, field: str) -> Optional[int]:
    """The ``field: N kB`` line of a /proc file, in bytes; None if absent or unreadable."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 if gone)."""
    return _kib_field("/proc/%d/status" % pid, "VmRSS") or 0


def tree_rss(pid: int) -> int:
    return sum(rss_bytes(member) for member in tree(pid))


def pss_bytes(pid: int) -> int:
    """Proportional set size of ``pid``: its private memory plus its share of pages it
    shares (the framework's libraries, mapped by every worker). Summed over processes it
    counts shared pages once, where RSS would count them in every worker. RSS where the
    kernel has no ``smaps_rollup`` (before 4.14); 0 if the process is gone."""
    pss = _kib_field("/proc/%d/smaps_rollup" % pid, "Pss")
    return pss if pss is not None else rss_bytes(pid)


def trees(pids: Iterable[int]) -> Set[int]:
    """``pids`` and every process below them, each once."""
    parents = _parents()
    seen: Set[int] = set()
    todo = list(pids)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return seen


def trees_pss(pids: Iterable[int]) -> int:
    """Memory held by ``pids`` and their children (a worker's own subprocesses count)."""
    return sum(pss_bytes(pid) for pid in trees(pids))


def groups_members(groups: Sequence[Iterable[int]]) -> List[Set[int]]:
    """Each group of pids with every process below them, reading the process table once
    for all the groups (a multi-model endpoint measures every model's workers at once)."""
    below: Dict[int, List[int]] = {}
    for child, parent in _parents().items():
        below.setdefault(parent, []).append(child)
    found = []
    for group in groups:
        seen: Set[int] = set()
        todo = list(group)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(below.get(current, ()))
        found.append(seen)
    return found


def _read_int(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo(field: str) -> Optional[int]:
    return _kib_field("/proc/meminfo", field)


def memory_limit_bytes(cgroup_root: Path = Path("/sys/fs/cgroup")) -> Optional[int]:
    """The memory this process may use: its container's cgroup limit (v2 ``memory.max``,
    v1 ``memory.limit_in_bytes``) when one is set, else the machine's total."""
    total = _meminfo("MemTotal")
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        limit = _read_int(cgroup_root / name)
        if limit is not None and (total is None or limit < total):
            return limit
    return total


def available_bytes(cgroup_root: Path = Path("/sys/fs/cgroup")) -> Optional[int]:
    """Memory that can still be taken without swapping: the kernel's MemAvailable, or what
    is left under the cgroup limit when that is smaller."""
    available = _meminfo("MemAvailable")
    limit = _read_int(cgroup_root / "memory.max")
    current = _read_int(cgroup_root / "memory.current")
    if limit is not None and current is not None:
        left = max(0, limit - current)
        available = left if available is None else min(available, left)
    return available


def oom_kills(cgroup_root: Path = Path("/sys/fs/cgroup")) -> Dict[str, int]:
    """The kernel's counts of processes its OOM killer killed, where it reports them: this
    container's cgroup (v2 ``memory.events``, v1 ``memory/memory.oom_control``) and the
    whole machine (``/proc/vmstat``). A worker SIGKILLed while one of them grew was, as far
    as anything outside the kernel can tell, killed for memory."""
    counts: Dict[str, int] = {}
    sources = (
        ("cgroup", cgroup_root / "memory.events"),
        ("cgroup-v1", cgroup_root / "memory" / "memory.oom_control"),
        ("machine", Path("/proc/vmstat")),
    )
    for name, path in sources:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) == 2 and fields[0] == "oom_kill" and fields[1].isdigit():
                counts[name] = int(fields[1])
    return counts


def oom_killed_since(before: Dict[str, int], after: Dict[str, int]) -> Optional[str]:
    """Which counter of ``oom_kills`` grew between two readings (None: none did)."""
    for name, count in after.items():
        if name in before and count > before[name]:
            return name
    return None


def start_time(pid: int) -> Optional[float]:
    """When ``pid`` started (seconds since the epoch, to the kernel's clock tick), None when
    unknown (no /proc, no such process). With the pid it names one process for good: a
    reused pid has another start time."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as machine:
            boot = next(int(line.split()[1]) for line in machine if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / float(os.sysconf("SC_CLK_TCK"))


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie, which has ended but not been waited for, does not)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def catches(pid: int, signum: int) -> Optional[bool]:
    """Whether ``pid`` has a handler installed for ``signum`` (``SigCgt`` in /proc); None
    when this host cannot tell (no /proc, no such process here)."""
    mask = _hex_field("/proc/%d/status" % pid, "SigCgt")
    return None if mask is None else bool(mask >> (signum - 1) & 1)


def _hex_field(path: str, field: str) -> Optional[int]:
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return None
