"""Dynamic batching's pieces on their own: the frontend's Batcher (on the event loops the
server runs on), the BATCH frame, and numpy stacking and splitting."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, List, Optional

import numpy as np
import pytest

from eikit import stacking
from eikit.server import protocol
from eikit.server.batcher import Batcher


class FakeWorker:
    """Takes batches; records what it got."""

    def __init__(self) -> None:
        self.batches: List[List[Any]] = []

    def send_batch(self, items: List[Any]) -> None:
        self.batches.append([meta for _, meta, _ in items])


def loops() -> List[Callable[[], asyncio.AbstractEventLoop]]:
    found: List[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]
    try:
        import uvloop
    except ImportError:
        return found
    return found + [uvloop.new_event_loop]


@pytest.fixture(params=loops(), ids=lambda factory: factory.__module__)
def run(request: Any) -> Any:
    loop = request.param()

    def _run(coro: Any) -> Any:
        return loop.run_until_complete(asyncio.wait_for(coro, 30))

    yield _run
    loop.close()


def test_a_full_batch_leaves_at_once_and_the_rest_after_the_delay(run: Any) -> None:
    worker = FakeWorker()
    free: List[Optional[FakeWorker]] = [worker]

    async def scenario() -> None:
        batcher = Batcher(3, 0.05, lambda: free[0])
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(4)]
        for i, future in enumerate(futures):
            batcher.add(future, b"r%d" % i, b"")
        assert worker.batches == [[b"r0", b"r1", b"r2"]]  # full: sent without waiting
        while len(worker.batches) < 2:  # the fourth, alone, once the delay is over
            await asyncio.sleep(0.01)
        assert worker.batches[1] == [b"r3"]
        batcher.close()

    run(scenario())


def test_a_timer_under_a_millisecond_is_rearmed_safely(run: Any) -> None:
    """uvloop gives a delay under a millisecond a plain Handle (no ``when()``)."""
    worker = FakeWorker()

    async def scenario() -> None:
        batcher = Batcher(8, 0.0005, lambda: worker)
        loop = asyncio.get_running_loop()
        for i in range(5):
            batcher.add(loop.create_future(), b"r%d" % i, b"")
        while sum(len(batch) for batch in worker.batches) < 5:
            await asyncio.sleep(0.001)
        batcher.close()

    run(scenario())


def test_requests_wait_for_a_worker_and_cancelled_ones_are_dropped(run: Any) -> None:
    worker = FakeWorker()
    free: List[Optional[FakeWorker]] = [None]

    async def scenario() -> None:
        sizes: List[int] = []
        batcher = Batcher(4, 0.0, lambda: free[0], sizes.append)
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(6)]
        for i, future in enumerate(futures):
            batcher.add(future, b"r%d" % i, b"")
        futures[1].cancel()  # its client went away
        assert worker.batches == [] and len(batcher.pending) == 6
        free[0] = worker
        batcher.dispatch()  # the pool calls this when a worker has room
        assert worker.batches == [[b"r0", b"r2", b"r3", b"r4"], [b"r5"]]
        assert sizes == [4, 1]  # the batch-size metric: what was sent, not what came

    run(scenario())


def test_expire_and_fail_all_answer_every_waiting_request(run: Any) -> None:
    async def scenario() -> None:
        batcher = Batcher(4, 10.0, lambda: None)
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(3)]
        for future in futures:
            batcher.add(future, b"", b"")
        batcher.expire(float("inf"), lambda: RuntimeError("too long"))
        assert all(isinstance(f.exception(), RuntimeError) for f in futures)
        late = loop.create_future()
        batcher.add(late, b"", b"")
        batcher.fail_all(ValueError("stopping"))
        assert isinstance(late.exception(), ValueError) and not batcher.pending
        batcher.close()

    run(scenario())


def test_batch_frame_round_trips_bodies_in_pieces() -> None:
    big = os.urandom(200_000)
    items = [
        (b"meta-0", b"[[1, 2]]"),
        (b"meta-1", protocol.Pieces([big[:1000], big[1000:]])),
        (b"", b""),
    ]
    stream = b"".join(protocol.batch_frame(items))
    [(kind, _, meta, body)] = protocol.FrameBuffer().feed(stream)
    assert kind == protocol.BATCH
    assert protocol.parse_batch(meta, body) == [
        (b"meta-0", b"[[1, 2]]"),
        (b"meta-1", big),
        (b"", b""),
    ]


def test_arrays_stack_only_when_they_agree() -> None:
    a = np.ones((2, 4), np.float32)
    assert stacking.array_key(a)[0] == stacking.array_key(np.zeros((5, 4), np.float32))[0]
    assert stacking.array_key(a)[1] == 2
    assert stacking.array_key(a)[0] != stacking.array_key(np.ones((2, 3), np.float32))[0]
    assert stacking.array_key(a)[0] != stacking.array_key(np.ones((2, 4), np.float64))[0]
    assert stacking.array_key(np.ones(4, np.float32)) is None  # no batch dimension
    assert stacking.array_key(np.array([["a"]])) is None
    assert stacking.array_key([[1.0, 2.0]]) is None


def test_predictions_split_back_or_refuse() -> None:
    prediction = np.arange(12).reshape(6, 2)
    parts = stacking.split_nested(prediction, [1, 3, 2])
    assert parts is not None
    assert [p.tolist() for p in parts] == [[[0, 1]], [[2, 3], [4, 5], [6, 7]], [[8, 9], [10, 11]]]
    nested = stacking.split_nested({"y": prediction, "z": (prediction, prediction)}, [4, 2])
    assert nested is not None and nested[1]["z"][0].tolist() == [[8, 9], [10, 11]]
    assert stacking.split_nested(prediction, [2, 2]) is None  # rows do not add up
    assert stacking.split_nested(np.float32(3.0), [1, 1]) is None  # a scalar: cannot split
    assert stacking.split_nested([1.0, 2.0], [1, 1]) is None  # a list of numbers: unknown
