"""A multi-model endpoint's pieces that need no server: the state machine of one model,
the free list of worker slots, the kernel's OOM evidence, GPU memory from nvidia-smi, and
which errors are out of memory."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from eikit.errors import InsufficientMemory, code_of, out_of_memory, status_of
from eikit.gpu_memory import MB, parse_process_memory, parse_total
from eikit.procs import oom_killed_since, oom_kills
from eikit.server.model_state import (
    FAILED,
    GONE,
    LOADING,
    READY,
    UNLOADING,
    IllegalTransition,
    Model,
)
from eikit.server.slots import FreeList, SlotsExhausted


def test_a_model_moves_only_along_the_machine_and_logs_each_move_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = Model("m\n1", Path("/models/m"), 0, None)
    assert model.state == LOADING and not model.settled.is_set()
    with caplog.at_level(logging.INFO, logger="eikit.server.models"):
        model.move(READY, "loaded in 1.0s")
        model.move(LOADING, "restart 1 of 2: its workers can no longer serve")
        assert not model.settled.is_set()  # invocations wait for the restart
        model.move(FAILED, "restart failed")
        model.move(GONE, "workers stopped")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "model 'm\\\\x0a1': loading -> ready (loaded in 1.0s)",
        "model 'm\\\\x0a1': ready -> loading (restart 1 of 2: its workers can no longer serve)",
        "model 'm\\\\x0a1': loading -> failed (restart failed)",
        "model 'm\\\\x0a1': failed -> gone (workers stopped)",
    ]
    assert model.settled.is_set()
    for state in (LOADING, READY, UNLOADING, FAILED, GONE):
        with pytest.raises(IllegalTransition):
            model.move(state, "nothing leaves gone")


@pytest.mark.parametrize(
    "path",
    [
        (READY, UNLOADING, GONE),
        (UNLOADING, GONE),  # loaded, then did not fit once measured
        (FAILED, GONE),
        (READY, FAILED, GONE),  # restarts spent
    ],
)
def test_every_way_out_ends_gone(path: tuple) -> None:
    model = Model("m", Path("/m"), 0, None)
    for state in path:
        model.move(state, "test")
    assert model.state == GONE


def test_illegal_moves_are_refused() -> None:
    model = Model("m", Path("/m"), 0, None)
    with pytest.raises(IllegalTransition):
        model.move(GONE, "a loading model is stopped through unloading or failed")
    model.move(READY, "loaded")
    model.move(UNLOADING, "asked to")
    with pytest.raises(IllegalTransition):
        model.move(READY, "an unloading model never serves again")


def test_the_free_list_hands_out_the_lowest_free_slot() -> None:
    slots = FreeList(capacity=3)
    assert [slots.take(), slots.take(), slots.take()] == [0, 1, 2]
    with pytest.raises(SlotsExhausted):
        slots.take()
    slots.give(1)
    slots.give(1)  # a second give of the same slot changes nothing
    slots.give(0)
    assert slots.in_use == 1
    assert [slots.take(), slots.take()] == [0, 1]
    unlimited = FreeList()
    assert [unlimited.take() for _ in range(5)] == [0, 1, 2, 3, 4]


def test_oom_kills_are_read_from_the_cgroup_v2_and_v1_files(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n")
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"
    )
    before = oom_kills(tmp_path)
    assert before["cgroup"] == 1 and before["cgroup-v1"] == 7
    assert oom_killed_since(before, oom_kills(tmp_path)) is None
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 3\noom_kill 2\n")
    assert oom_killed_since(before, oom_kills(tmp_path)) == "cgroup"
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert "cgroup" not in oom_kills(empty)  # no cgroup files: only the machine's count


def test_gpu_memory_from_nvidia_smi_output() -> None:
    text = "1234, 2048\n1234, 1024\n99, [N/A]\nnonsense\n5678, 512\n"
    assert parse_process_memory(text) == {1234: 3072 * MB, 5678: 512 * MB}
    assert parse_total("81559\n81559\n") == 2 * 81559 * MB
    assert parse_total("") is None


class OutOfMemoryError(RuntimeError):
    """Named as torch.cuda.OutOfMemoryError is."""


class ResourceExhaustedError(Exception):
    """Named as TensorFlow's is."""


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        OutOfMemoryError("allocation failed"),  # by its class name alone
        ResourceExhaustedError("OOM when allocating tensor with shape [1024,1024,1024]"),
        RuntimeError("CUDA error: out of memory"),
        RuntimeError("[12:00:00] src/storage.cc: cudaMalloc retry failed: out of memory"),
        InsufficientMemory("no room"),
    ],
)
def test_out_of_memory_in_every_form_is_507(error: BaseException) -> None:
    assert status_of(error) == 507 and code_of(error) == "insufficient_memory"
    assert out_of_memory(error) or isinstance(error, InsufficientMemory)


def test_other_errors_are_not_out_of_memory() -> None:
    assert not out_of_memory(RuntimeError("shape mismatch"))
    assert status_of(ValueError("memory layout unsupported")) == 500
