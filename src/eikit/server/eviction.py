"""Which loaded models to unload so that one more fits: a pure function of what each model
holds and when it was last used.

Every limit is a *resource* with a cap: host memory (the models' measured proportional set
size, against ``EIKIT_MODELS_MEMORY_MB``), memory the machine still has free, GPU memory,
the count of models (``EIKIT_MAX_MODELS``), worker processes (the open-files limit leaves
descriptors for so many), and worker slots (TF Serving's ports). A model about to load, or
just measured, needs some of each; the plan unloads the least recently used idle models
that hold some of a resource over its cap, until nothing is over. When only busy models
would be left to unload, nothing is unloaded and the plan says why (a 507).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

MB = 1024 * 1024

MEMORY = "memory"  # bytes of host memory the models hold, against the configured cap
FREE = "free"  # the same bytes, against what they hold plus what the machine has free
GPU = "gpu_memory"  # bytes of GPU memory
MODELS = "models"  # 1 per model
WORKERS = "workers"  # worker processes
SLOTS = "slots"  # worker slots: TF Serving's port pairs, device numbers

RESOURCES = (MODELS, SLOTS, WORKERS, MEMORY, FREE, GPU)


class Resident(NamedTuple):
    """A loaded model as eviction sees it."""

    name: str
    last_used: float
    evictable: bool  # ready and idle: nothing running, queued or waiting for it
    holds: Mapping[str, int]  # resource -> amount


class Plan(NamedTuple):
    victims: Tuple[str, ...]  # to unload, least recently used first
    blocked: Optional[str]  # the resource still over its cap (then victims is empty)
    over: Optional[str]  # the resource that made the first victim go (None: nothing had to)


def used(residents: Sequence[Resident]) -> Dict[str, int]:
    totals: Dict[str, int] = {}
    for resident in residents:
        for resource, amount in resident.holds.items():
            totals[resource] = totals.get(resource, 0) + amount
    return totals


def _over(
    totals: Mapping[str, int], need: Mapping[str, int], caps: Mapping[str, Optional[int]]
) -> Optional[str]:
    for resource in RESOURCES:
        cap = caps.get(resource)
        if cap is not None and totals.get(resource, 0) + need.get(resource, 0) > cap:
            return resource
    return None


def plan(
    residents: Sequence[Resident],
    need: Mapping[str, int],
    caps: Mapping[str, Optional[int]],
) -> Plan:
    """The models to unload so that ``need`` fits under ``caps`` (a missing or None cap: no
    limit). Only evictable models go, least recently used first, and only those holding some
    of a resource that is over. If that is not enough, nothing goes: the plan is blocked."""
    totals = used(residents)
    first_over = over = _over(totals, need, caps)
    if over is None:
        return Plan((), None, None)
    candidates = sorted((r for r in residents if r.evictable), key=lambda r: r.last_used)
    victims: List[str] = []
    while over is not None:
        victim = next((r for r in candidates if r.holds.get(over, 0) > 0), None)
        if victim is None:
            return Plan((), over, first_over)
        candidates.remove(victim)
        victims.append(victim.name)
        for resource, amount in victim.holds.items():
            totals[resource] = totals.get(resource, 0) - amount
        over = _over(totals, need, caps)
    return Plan(tuple(victims), None, first_over)


def explain(
    resource: str,
    totals: Mapping[str, int],
    need: Mapping[str, int],
    caps: Mapping[str, Optional[int]],
) -> str:
    """Why ``need`` does not fit ``resource``, in words (for a log line or a 507)."""
    held, wanted, cap = totals.get(resource, 0), need.get(resource, 0), caps[resource]
    assert cap is not None, "only a resource with a cap can be over it"
    if resource == MODELS:
        return "EIKIT_MAX_MODELS=%d models are loaded" % cap
    if resource == SLOTS:
        return "all %d worker slots are taken (SAGEMAKER_SAFE_PORT_RANGE: two ports each)" % cap
    if resource == WORKERS:
        return (
            "models run %d of the %d worker processes the open-files limit (ulimit -n) leaves "
            "room for besides EIKIT_MAX_CONNECTIONS, and this needs %d" % (held, cap, wanted)
        )
    if resource == FREE:
        return "%.0f MiB of memory is free and this needs %.0f MiB" % (
            (cap - held) / MB,
            wanted / MB,
        )
    what = "of GPU memory " if resource == GPU else ""
    return "models hold %.0f MiB %sand this needs %.0f MiB of the %.0f MiB allowed" % (
        held / MB,
        what,
        wanted / MB,
        cap / MB,
    )
