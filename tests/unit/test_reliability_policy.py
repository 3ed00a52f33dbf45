"""The replacement policy: backoff between tries, and the bound that marks a model failed."""

from __future__ import annotations

from eikit.server.backoff import RETRY_MAX, ReplacementPolicy


def test_failed_replacements_back_off_from_one_second_doubling_to_a_cap():
    policy = ReplacementPolicy(limit=5)
    delays = [policy.failed(0, serving=True) for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, RETRY_MAX, RETRY_MAX, RETRY_MAX]
    assert policy.attempts(0) == 8


def test_while_another_worker_serves_it_never_gives_up():
    policy = ReplacementPolicy(limit=2)
    assert all(policy.failed(1, serving=True) is not None for _ in range(100))


def test_failures_with_no_worker_serving_give_up_at_the_limit_counted_over_all_workers():
    policy = ReplacementPolicy(limit=3)
    assert policy.failed(0, serving=False) == 1.0
    assert policy.failed(1, serving=False) == 1.0  # each worker has its own backoff
    assert policy.failed(0, serving=False) is None  # third in a row with nobody serving


def test_a_worker_that_loads_starts_both_counts_over():
    policy = ReplacementPolicy(limit=2)
    assert policy.failed(0, serving=False) == 1.0
    assert policy.failed(0, serving=True) == 2.0  # served by another: not counted
    policy.served(1)  # some worker loaded: the no-worker count starts over
    assert policy.failed(0, serving=False) == 4.0
    policy.served(0)
    assert policy.attempts(0) == 0
    assert policy.failed(0, serving=False) == 1.0
    assert policy.failed(0, serving=False) is None  # 2nd in a row since worker 0 loaded


def test_limit_zero_retries_forever():
    policy = ReplacementPolicy(limit=0)
    assert all(policy.failed(0, serving=False) is not None for _ in range(50))
