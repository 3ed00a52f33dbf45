"""The frontend's metrics: folded in bulk, exposed in Prometheus's text format."""

from __future__ import annotations

import math

from eikit.server import metrics
from tests import prometheus

NAN = math.nan


def scrape(collected: metrics.Metrics):
    body, content_type = collected.render()
    assert content_type.startswith("text/plain")
    return prometheus.samples(body.decode())


def test_histograms_are_cumulative_and_skip_phases_that_did_not_run():
    collected = metrics.Metrics(lambda: {"queue_depth": 3, "workers": 2})
    collected.request((200, 0.002, 0.0004, 0.0001, 0.001, 0.0002))
    collected.request((200, 0.2, 0.1, 0.01, 0.05, 0.03))
    collected.request((413, 0.0001, NAN, NAN, NAN, NAN))
    found = scrape(collected)
    assert found['eikit_requests_total{status="200"}'] == 2
    assert found['eikit_requests_total{status="413"}'] == 1
    assert found['eikit_request_duration_seconds_count{phase="total"}'] == 3
    assert found['eikit_request_duration_seconds_count{phase="predict"}'] == 2
    assert found['eikit_request_duration_seconds_bucket{le="0.001",phase="predict"}'] == 1
    assert found['eikit_request_duration_seconds_bucket{le="0.1",phase="predict"}'] == 2
    assert found['eikit_request_duration_seconds_bucket{le="+Inf",phase="total"}'] == 3
    assert math.isclose(found['eikit_request_duration_seconds_sum{phase="total"}'], 0.2021)
    assert found["eikit_queue_depth{}"] == 3 and found["eikit_workers{}"] == 2


def test_pending_samples_are_folded_in_bulk_so_the_list_stays_bounded():
    collected = metrics.Metrics()
    for _ in range(metrics.FOLD_EVERY * 2 + 5):
        collected.request((200, 0.001, 0.001, 0.001, 0.001, 0.001))
        assert len(collected._pending) < metrics.FOLD_EVERY
    assert scrape(collected)['eikit_requests_total{status="200"}'] == metrics.FOLD_EVERY * 2 + 5


def test_restarts_and_load_times():
    collected = metrics.Metrics()
    collected.worker_restart("crash")
    collected.worker_restart("crash")
    collected.worker_restart("timeout")
    collected.model_loaded(1.5)
    found = scrape(collected)
    assert found['eikit_worker_restarts_total{reason="crash"}'] == 2
    assert found['eikit_worker_restarts_total{reason="timeout"}'] == 1
    assert found["eikit_model_load_seconds_count{}"] == 1
    assert found['eikit_model_load_seconds_bucket{le="2.5"}'] == 1


def test_batch_sizes():
    collected = metrics.Metrics()
    assert scrape(collected)["eikit_batch_size_count{}"] == 0  # batching off: none
    for size in (1, 3, 16):
        collected.batch_sent(size)
    found = scrape(collected)
    assert found['eikit_batch_size_bucket{le="1.0"}'] == 1
    assert found['eikit_batch_size_bucket{le="4.0"}'] == 2
    assert found['eikit_batch_size_bucket{le="16.0"}'] == 3
    assert found["eikit_batch_size_count{}"] == 3 and found["eikit_batch_size_sum{}"] == 20


def test_bulk_folding_counts_as_one_at_a_time() -> None:
    """Values on a bucket's bound go in that bucket; NaN (a phase that did not run) nowhere."""
    import math
    import random

    from eikit.server.metrics import LATENCY_BUCKETS, Buckets

    rng = random.Random(7)
    values = [
        rng.choice([rng.random() * 70, NAN, 0.0, 60.0, *LATENCY_BUCKETS]) for _ in range(3000)
    ]
    one, bulk = Buckets(LATENCY_BUCKETS), Buckets(LATENCY_BUCKETS)
    for value in values:
        if not math.isnan(value):
            one.add(value)
    bulk.add_all(values)
    assert bulk.counts == one.counts and math.isclose(bulk.total, one.total)


def test_the_frontend_does_not_load_numpy() -> None:
    """numpy costs the frontend ~0.1 s of start-up and ~14 MB; only workers decode arrays."""
    import subprocess
    import sys

    code = "import sys, eikit.server.run; print('numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
