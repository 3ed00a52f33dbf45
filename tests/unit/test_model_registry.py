"""The multi-model registry's bookkeeping, with stand-in pools: paging, estimates, which
model is evicted, and when a load gets 507. The real thing, with real workers, is
tests/integration/test_multi_model.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, List

import pytest

from eikit.errors import InsufficientMemory
from eikit.server.models import MB, READY, Model, ModelRegistry
from eikit.settings import Settings


class FakePool:
    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.stopped = False
        self.count = 1
        self.ready: List[Any] = []

    async def stop(self) -> None:
        self.stopped = True

    def drain(self) -> None:
        pass


def registry(**settings: Any) -> ModelRegistry:
    return ModelRegistry(Settings(**settings), "pytorch", [])


def add(reg: ModelRegistry, name: str, memory: int, last_used: float, busy: bool = False) -> Model:
    model = Model(name, Path("/models") / name, FakePool(busy), None)  # type: ignore[arg-type]
    model.state = READY
    model.memory = memory
    model.last_used = last_used
    reg.models[name] = model
    return model


def run(coroutine: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coroutine)


def test_pages_follow_name_order_and_the_token() -> None:
    reg = registry()
    for name in ("c", "a", "b/1", "d"):
        add(reg, name, MB, 0)
    first = reg.page(None, 2)
    assert [m["modelName"] for m in first["models"]] == ["a", "b/1"]
    second = reg.page(first["nextPageToken"], 2)
    assert [m["modelName"] for m in second["models"]] == ["c", "d"]
    assert "nextPageToken" not in second
    assert [m["modelName"] for m in reg.page(None, None)["models"]] == ["a", "b/1", "c", "d"]
    assert reg.page("zzz", 5) == {"models": []}


def test_the_least_recently_used_idle_model_goes_first() -> None:
    reg = registry(max_models=3, models_memory_mb=10_000)
    old_busy = add(reg, "old-busy", MB, last_used=1, busy=True)
    old = add(reg, "old", MB, last_used=2)
    recent = add(reg, "recent", MB, last_used=3)
    run(reg._make_room(MB, "load new"))
    assert sorted(reg.models) == ["old-busy", "recent"]
    assert old.pool.stopped and not old_busy.pool.stopped and not recent.pool.stopped
    assert reg.evictions == 1


def test_memory_cap_evicts_until_the_estimate_fits() -> None:
    reg = registry(models_memory_mb=1000)
    for index in range(4):
        add(reg, "m%d" % index, 300 * MB, last_used=index)
    run(reg._make_room(300 * MB, "load new"))  # 1200 + 300 > 1000: two must go
    assert sorted(reg.models) == ["m2", "m3"]


def test_507_when_only_busy_models_could_make_room() -> None:
    reg = registry(max_models=1)
    add(reg, "busy", MB, last_used=0, busy=True)
    with pytest.raises(InsufficientMemory, match="EIKIT_MAX_MODELS=1"):
        run(reg._make_room(MB, "load new"))
    assert list(reg.models) == ["busy"]


def test_a_measured_model_over_the_cap_is_refused_even_alone() -> None:
    reg = registry(models_memory_mb=100)
    kept = add(reg, "big", 200 * MB, last_used=0)
    with pytest.raises(InsufficientMemory, match="200 MiB"):
        run(reg._make_room(0, "keep big", keep=kept))


def test_estimates_use_what_was_measured(tmp_path: Path) -> None:
    reg = registry(workers=2)
    (tmp_path / "weights.bin").write_bytes(b"x" * 4096)
    assert reg._estimate("first", tmp_path) == 2 * 4096  # nothing measured yet: its files
    add(reg, "a", 100 * MB, 0)
    add(reg, "b", 300 * MB, 0)
    assert reg._estimate("new", tmp_path) == 200 * MB  # the median of the loaded ones
    reg._remember("again", 50 * MB)
    assert reg._estimate("again", tmp_path) == 50 * MB  # its own last measurement
