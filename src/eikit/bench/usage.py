"""CPU and memory of a server's process tree (frontend and workers), from Linux ``/proc``.

CPU per request is the figure that holds best on a shared machine: a neighbour's load
moves requests/s and latency a lot, the CPU one request costs much less.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from eikit import procs

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

Times = Dict[int, Tuple[float, float]]  # pid -> (user s, system s)


def cpu_times(pid: int) -> Optional[Tuple[float, float]]:
    """(user, system) CPU seconds ``pid`` has used so far; None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # from field 3 (state) on
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def sample(pids: Iterable[int]) -> Times:
    found = {}
    for pid in pids:
        times = cpu_times(pid)
        if times is not None:
            found[pid] = times
    return found


def tree_sample(root: int) -> Times:
    """CPU times of ``root`` and every process below it."""
    return sample(procs.tree(root))


@dataclass
class CpuUse:
    user_s: float
    system_s: float
    by_pid: Dict[int, float]

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s


def cpu_used(before: Times, after: Times) -> CpuUse:
    """CPU spent between two samples. A process that appeared in between (a replaced
    worker) counts whole; one that ended in between is lost (its last ticks)."""
    user = system = 0.0
    by_pid = {}
    for pid, (u1, s1) in after.items():
        u0, s0 = before.get(pid, (0.0, 0.0))
        du, ds = max(0.0, u1 - u0), max(0.0, s1 - s0)
        user += du
        system += ds
        by_pid[pid] = du + ds
    return CpuUse(user, system, by_pid)


def machine_busy() -> Tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat); zeros elsewhere."""
    try:
        with open("/proc/stat") as stat:
            first = stat.readline().split()
    except OSError:
        return 0.0, 0.0
    values = [int(x) / _TICK for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy, sum(values)


def other_cores(before: Tuple[float, float], after: Tuple[float, float], ours_s: float) -> float:
    """Cores that processes other than the measured ones used between two ``machine_busy``
    samples: above ~0.2 the machine was busy and the figures are noisy."""
    cores = os.cpu_count() or 1
    wall = (after[1] - before[1]) / cores
    if wall <= 0:
        return 0.0
    return max(0.0, (after[0] - before[0] - ours_s) / wall)


def tree_memory(root: int) -> Dict[str, int]:
    """PSS and RSS in bytes of ``root`` and its descendants (PSS counts shared pages once)."""
    members: List[int] = procs.tree(root)
    return {
        "pss_bytes": sum(procs.pss_bytes(pid) for pid in members),
        "rss_bytes": sum(procs.rss_bytes(pid) for pid in members),
        "processes": len(members),
    }
