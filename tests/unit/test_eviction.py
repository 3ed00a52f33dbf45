"""Eviction as a pure function: which models go, given what each holds and when each was
last used, so that one more fits every cap."""

from __future__ import annotations

from typing import Dict, Optional

from eikit.server.eviction import (
    FREE,
    GPU,
    MB,
    MEMORY,
    MODELS,
    SLOTS,
    WORKERS,
    Plan,
    Resident,
    explain,
    plan,
    used,
)


def model(
    name: str, last_used: float, memory: int = 0, idle: bool = True, **holds: int
) -> Resident:
    held: Dict[str, int] = {MODELS: 1, SLOTS: 1, WORKERS: 1, MEMORY: memory, FREE: memory}
    held.update(holds)
    return Resident(name, last_used, idle, held)


def need(memory: int = 0, models: int = 1, **more: int) -> Dict[str, int]:
    wanted = {MODELS: models, SLOTS: models, WORKERS: models, MEMORY: memory, FREE: memory}
    wanted.update(more)
    return wanted


def caps(**values: Optional[int]) -> Dict[str, Optional[int]]:
    return dict(values)


def test_nothing_goes_when_everything_fits() -> None:
    residents = [model("a", 1, 100 * MB)]
    assert plan(residents, need(100 * MB), caps(memory=1000 * MB)) == Plan((), None, None)
    assert plan([], need(10**12), {}) == Plan((), None, None)  # no caps, no limit


def test_least_recently_used_idle_ones_go_until_it_fits() -> None:
    residents = [
        model("newest", 30, 300 * MB),
        model("oldest", 10, 300 * MB),
        model("middle", 20, 300 * MB),
    ]
    result = plan(residents, need(500 * MB), caps(memory=1000 * MB))
    assert result.victims == ("oldest", "middle")  # 900 + 500 -> 600 + 500 -> 300 + 500
    assert result.blocked is None and result.over == MEMORY


def test_busy_models_never_go() -> None:
    residents = [model("old-busy", 1, 500 * MB, idle=False), model("recent", 9, 500 * MB)]
    result = plan(residents, need(400 * MB), caps(memory=1000 * MB))
    assert result.victims == ("recent",)


def test_blocked_when_only_busy_models_could_make_room_and_then_nothing_goes() -> None:
    residents = [model("busy", 1, 500 * MB, idle=False), model("idle", 2, 100 * MB)]
    result = plan(residents, need(600 * MB), caps(memory=1000 * MB))
    assert result == Plan((), MEMORY, MEMORY)  # evicting "idle" alone would not be enough


def test_only_models_holding_the_scarce_resource_go() -> None:
    # GPU memory is over: the least recently used model holds none of it, so it stays.
    residents = [
        model("cpu-only", 1, 100 * MB, gpu_memory=0),
        model("on-gpu", 5, 100 * MB, gpu_memory=8000 * MB),
    ]
    result = plan(residents, need(100 * MB, gpu_memory=4000 * MB), caps(gpu_memory=10000 * MB))
    assert result.victims == ("on-gpu",) and result.over == GPU


def test_counts_ports_and_workers_are_resources_too() -> None:
    residents = [model("a", 1), model("b", 2)]
    assert plan(residents, need(), caps(models=2)).victims == ("a",)
    assert plan(residents, need(), caps(slots=2)).victims == ("a",)
    assert plan(residents, need(workers=3), caps(workers=4)).victims == ("a",)
    assert plan(residents, need(workers=5), caps(workers=4)).blocked == WORKERS


def test_free_memory_counts_what_victims_give_back() -> None:
    # The machine has 200 MiB free; the models hold 600: the cap is what they hold + free.
    residents = [model("a", 1, 300 * MB), model("b", 2, 300 * MB)]
    result = plan(residents, need(400 * MB), caps(free=600 * MB + 200 * MB))
    assert result.victims == ("a",) and result.over == FREE


def test_a_measured_model_is_checked_with_nothing_more_needed() -> None:
    # After a load, the new model is measured: it is a resident (not evictable) and the
    # need is zero; the others make room for it, or it does not fit.
    residents = [model("new", 9, 700 * MB, idle=False), model("old", 1, 500 * MB)]
    zero = need(0, models=0)
    assert plan(residents, zero, caps(memory=1000 * MB)).victims == ("old",)
    alone = [model("new", 9, 1200 * MB, idle=False)]
    assert plan(alone, zero, caps(memory=1000 * MB)).blocked == MEMORY


def test_explanations_name_the_limit() -> None:
    totals = used([model("a", 1, 300 * MB)])
    limits = caps(memory=400 * MB, models=1, slots=1, workers=1, free=350 * MB, gpu_memory=MB)
    wanted = need(200 * MB)
    assert explain(MODELS, totals, wanted, limits) == "EIKIT_MAX_MODELS=1 models are loaded"
    assert "300 MiB and this needs 200 MiB of the 400 MiB allowed" in explain(
        MEMORY, totals, wanted, limits
    )
    assert explain(FREE, totals, wanted, limits).startswith("50 MiB of memory is free")
    assert "SAGEMAKER_SAFE_PORT_RANGE" in explain(SLOTS, totals, wanted, limits)
    assert "ulimit -n" in explain(WORKERS, totals, wanted, limits)
    assert "GPU memory" in explain(GPU, totals, wanted, limits)
