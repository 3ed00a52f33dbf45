"""The multi-model registry's bookkeeping, with stand-in pools (``eikit.server.models.
WorkerPool`` replaced): paging, estimates, which model is evicted, when a load gets 507, the
race between a finishing load and another's eviction, and 2,000 loads and unloads within
TF Serving's ports. The real thing, with real workers, is tests/integration/
test_multi_model.py and test_multi_model_faults.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import stat
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from eikit.errors import InsufficientMemory
from eikit.server import models as models_module
from eikit.server.model_capacity import Capacity, zero
from eikit.server.model_state import READY, Model
from eikit.server.models import MB, ModelRegistry
from eikit.settings import Settings


class FakePool:
    """What the registry uses of a WorkerPool; ``start`` waits for ``gate`` when given."""

    made: List[FakePool] = []

    def __init__(self, settings: Any = None, *args: Any, **kwargs: Any) -> None:
        self.settings = settings
        self.device_offset = kwargs.get("device_offset", 0)
        self.count = args[2] if len(args) > 2 else 1
        self.busy = False
        self.stopped = False
        self.ready: List[Any] = []
        self.failed_reason: Optional[str] = None
        self.failed_code: Optional[str] = None
        self.on_health: Any = None
        self.gate: Optional[asyncio.Event] = None
        self.stop_gate: Optional[asyncio.Event] = None
        FakePool.made.append(self)

    async def start(self) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.ready = [object()] * self.count

    async def stop(self) -> None:
        if self.stop_gate is not None:
            await self.stop_gate.wait()
        self.stopped = True

    def pids(self) -> List[int]:
        return []

    def drain(self) -> None:
        pass

    def gauges(self) -> Dict[str, float]:
        return {}


@pytest.fixture(autouse=True)
def fake_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    FakePool.made = []
    monkeypatch.setattr(models_module, "WorkerPool", FakePool)


def registry(tmp_path: Path, **settings: Any) -> ModelRegistry:
    settings.setdefault("base_dir", tmp_path)
    return ModelRegistry(Settings(**settings), settings.pop("runtime", "pytorch"), [])


def add(reg: ModelRegistry, name: str, memory: int, last_used: float, busy: bool = False) -> Model:
    model = Model(name, Path("/models") / name, reg.slots.take(), None)
    model.pool = FakePool()  # type: ignore[assignment]
    model.pool.busy = busy
    model.pool.ready = [object()]
    model.move(READY, "made by the test")
    model.memory = memory
    model.last_used = last_used
    reg.models[name] = model
    return model


def folder(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "models" / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "weights.bin").write_bytes(b"x" * 4096)
    return path


def run(coroutine: Any) -> Any:
    """On a loop of its own, whose executor's threads end with it (Python 3.8's loops never
    shut their default executor down, and the leak check counts the threads left)."""
    loop = asyncio.new_event_loop()
    executor = concurrent.futures.ThreadPoolExecutor()
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
        executor.shutdown(wait=True)


def test_pages_follow_name_order_and_the_token(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    for name in ("c", "a", "b/1", "d"):
        add(reg, name, MB, 0)
    first = reg.page(None, 2)
    assert [m["modelName"] for m in first["models"]] == ["a", "b/1"]
    second = reg.page(first["nextPageToken"], 2)
    assert [m["modelName"] for m in second["models"]] == ["c", "d"]
    assert "nextPageToken" not in second
    assert [m["modelName"] for m in reg.page(None, None)["models"]] == ["a", "b/1", "c", "d"]
    assert reg.page("zzz", 5) == {"models": []}
    reg.models["d"].pool.ready = []  # every worker being replaced: it cannot serve now
    assert [m["modelName"] for m in reg.page(None, None)["models"]] == ["a", "b/1", "c"]


def test_the_least_recently_used_idle_model_goes_first(tmp_path: Path) -> None:
    reg = registry(tmp_path, max_models=3, models_memory_mb=10_000)
    old_busy = add(reg, "old-busy", MB, last_used=1, busy=True)
    old = add(reg, "old", MB, last_used=2)
    recent = add(reg, "recent", MB, last_used=3)
    run(reg._make_room(reg.capacity.estimate("new", 0, reg.models.values()), "load new"))
    assert sorted(reg.models) == ["old-busy", "recent"]
    assert old.pool.stopped and not old_busy.pool.stopped and not recent.pool.stopped
    assert reg.evictions == 1 and old.state == "gone"


def test_memory_cap_evicts_until_the_estimate_fits(tmp_path: Path) -> None:
    reg = registry(tmp_path, models_memory_mb=1000)
    for index in range(4):
        add(reg, "m%d" % index, 300 * MB, last_used=index)
    run(
        reg._make_room(reg.capacity.estimate("new", 0, reg.models.values()), "load new")
    )  # 1200 + 300 > 1000: two go
    assert sorted(reg.models) == ["m2", "m3"]


def test_507_when_only_busy_models_could_make_room(tmp_path: Path) -> None:
    reg = registry(tmp_path, max_models=1)
    add(reg, "busy", MB, last_used=0, busy=True)
    with pytest.raises(InsufficientMemory, match="EIKIT_MAX_MODELS=1"):
        run(reg._make_room(reg.capacity.estimate("new", 0, reg.models.values()), "load new"))
    assert list(reg.models) == ["busy"]


def test_a_measured_model_over_the_cap_is_refused_even_alone(tmp_path: Path) -> None:
    reg = registry(tmp_path, models_memory_mb=100)
    kept = add(reg, "big", 200 * MB, last_used=0)
    with pytest.raises(InsufficientMemory, match="200 MiB"):
        run(reg._make_room(zero(), "keep big", keep=kept))


def test_estimates_use_what_was_measured(tmp_path: Path) -> None:
    reg = registry(tmp_path, workers=2)
    assert (
        reg.capacity.estimate("first", 4096, reg.models.values())["memory"] == 2 * 4096
    )  # nothing measured: its files
    add(reg, "a", 100 * MB, 0)
    add(reg, "b", 300 * MB, 0)
    assert (
        reg.capacity.estimate("new", 4096, reg.models.values())["memory"] == 200 * MB
    )  # the median of the loaded ones
    again = add(reg, "again", 50 * MB, 0)
    reg.capacity.remember(again)
    del reg.models["again"]
    assert (
        reg.capacity.estimate("again", 4096, reg.models.values())["memory"] == 50 * MB
    )  # its own last measurement


def test_a_model_that_finished_loading_is_not_evicted_before_its_fit_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: READY and the fit check were two lock sections, so c's load, holding the
    lock to evict a, could evict b too once b's workers came up, and b's load still
    answered 200 for a model that was gone. b must stay: it is not READY (evictable) until
    its own fit check, and then it counts as just used."""
    monkeypatch.setattr(Capacity, "measure", lambda self, groups: [(400 * MB, 0)])
    reg = registry(tmp_path, models_memory_mb=1000, models_measure_interval=3600)
    original = FakePool.start

    async def scenario() -> Dict[str, Any]:
        a = add(reg, "a", 400 * MB, last_used=0)
        reg.capacity.remember(a)
        b_started, b_gate, a_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def start(pool: FakePool) -> None:
            if not b_started.is_set():  # b's pool: held until the test lets it come up
                pool.gate = b_gate
                b_started.set()
            await original(pool)

        monkeypatch.setattr(FakePool, "start", start)
        a.pool.stop_gate = a_stop
        b_load = asyncio.ensure_future(reg.load("b", str(folder(tmp_path, "b"))))
        await b_started.wait()
        reg.capacity.sizes["c"] = (700 * MB, 0)  # c needs 700: a and b (400 each) would both go
        c_load = asyncio.ensure_future(reg.load("c", str(folder(tmp_path, "c"))))
        while not c_load.done() and a.state != "unloading":
            await asyncio.sleep(0)
        b_gate.set()  # b's workers come up while c decides
        while reg.models.get("b") is None or reg.models["b"].state != "ready":
            await asyncio.sleep(0)
        a_stop.set()
        b_answer, c_answer = await asyncio.gather(b_load, c_load, return_exceptions=True)
        answer = {"b": b_answer, "c": c_answer, "models": sorted(reg.models)}
        await reg.stop()
        return answer

    answer = run(scenario())
    assert not isinstance(answer["b"], BaseException), answer
    assert "b" in answer["models"], answer  # b's load said 200: b is loaded
    assert isinstance(answer["c"], InsufficientMemory), answer  # only busy-or-new b was left


def test_2000_loads_and_unloads_stay_within_tf_servings_ports(tmp_path: Path) -> None:
    """Defect: worker numbers grew with every load, and TF Serving's ports with them: with
    a 1,000-port range, loads failed after about 500. Numbers come from a free list now."""
    from eikit_tensorflow.tfs_process import ports

    binary = tmp_path / "bin" / "tensorflow_model_server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    settings = dict(
        safe_port_range="10000-10999",
        tfs_binary=str(binary),
        models_measure_interval=3600,
        runtime="tensorflow",
    )
    reg = registry(tmp_path, **settings)
    path = str(folder(tmp_path, "m"))

    async def cycles() -> List[int]:
        offsets = []
        for cycle in range(2000):
            name = "m%d" % (cycle % 3)
            await reg.load(name, path)
            offsets.append(FakePool.made[-1].device_offset)
            if cycle % 3 == 2:
                for index in range(3):
                    await reg.unload("m%d" % index)
        await reg.stop()
        return offsets

    offsets = run(cycles())
    check = Settings(safe_port_range="10000-10999")
    assert sorted(set(offsets)) == [0, 1, 2]  # three models at a time: three slots
    for offset in set(offsets):
        grpc_port, rest_port = ports(check, offset)
        assert 10000 <= grpc_port < rest_port <= 10999


def test_a_load_past_the_ports_evicts_or_is_507(tmp_path: Path) -> None:
    binary = tmp_path / "tensorflow_model_server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    reg = registry(
        tmp_path,
        safe_port_range="10000-10003",  # two workers' pairs
        tfs_binary=str(binary),
        models_measure_interval=3600,
        runtime="tensorflow",
    )
    path = str(folder(tmp_path, "m"))

    async def scenario() -> Any:
        await reg.load("a", path)
        await reg.load("b", path)
        reg.models["b"].pool.busy = True
        await reg.load("c", path)  # a is idle: evicted, its slot reused
        assert sorted(reg.models) == ["b", "c"] and reg.models["c"].slot == 0
        reg.models["c"].pool.busy = True
        with pytest.raises(InsufficientMemory, match="worker slots"):
            await reg.load("d", path)
        await reg.stop()

    run(scenario())


def test_the_first_size_walk_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: the first load walked the model's files on the event loop."""
    walked_on: List[str] = []
    real = models_module.model_resources.check_model_dir

    def check(path: Path, size_wanted: bool) -> int:
        walked_on.append(threading.current_thread().name)
        return real(path, size_wanted)

    monkeypatch.setattr(models_module.model_resources, "check_model_dir", check)
    reg = registry(tmp_path, models_measure_interval=3600)

    async def load() -> None:
        await reg.load("m", str(folder(tmp_path, "m")))
        await reg.stop()

    run(load())
    assert walked_on and threading.main_thread().name not in walked_on


def test_workers_are_held_to_what_the_open_files_limit_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soft limit is raised toward the hard one; what is left after the connections
    and the frontend's own descriptors, at 4 per worker, bounds the workers."""
    import resource

    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (500, 700))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limits: calls.append(limits))
    reg = registry(tmp_path, max_connections=600)
    assert calls == [(700, 700)]
    assert reg.capacity.worker_budget == (700 - 600 - 32 - 16) // 4
