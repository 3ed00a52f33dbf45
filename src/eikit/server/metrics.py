"""Prometheus metrics of the frontend, kept off the request path.

A finished request costs one list append here. The numbers are folded into histogram
buckets in bulk (a sort per phase: about 1 us a request), on the pool's watchdog tick and when
``/metrics`` is scraped, and turned into Prometheus families only on a scrape (a custom
collector, not one ``observe()`` with its lock per phase per request).
``eikit bench MODEL --b EIKIT_METRICS=false`` measures the cost side by side.

Phases of one request: ``queue`` (from arrival until a worker starts it, including the
hop to the worker), ``decode`` (input_fn), ``predict`` (predict_fn), ``encode``
(output_fn); ``total`` is arrival to reply. ``transform_fn`` counts as ``predict``.
"""

from __future__ import annotations

import bisect
import threading
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

PHASES = ("total", "queue", "decode", "predict", "encode")
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
LOAD_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # requests per batch
FOLD_EVERY = 4096  # pending requests folded at once, so the list stays small under load

# status, then one value per phase (NaN: the phase did not happen, e.g. a 413)
Sample = Tuple[int, float, float, float, float, float]


class Buckets:
    """A cumulative-on-read histogram: plain counts per bucket, a sum and a count."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def add_all(self, values: Iterable[float]) -> None:
        """``add`` for each value that is not NaN: sorted once, then each bucket's count is
        a difference of two positions (no numpy: the frontend does not load it)."""
        kept = sorted(value for value in values if value == value)
        if not kept:
            return
        below = 0
        for index, bound in enumerate(self.bounds):
            upto = bisect.bisect_right(kept, bound, below)  # values <= bound, as add() counts
            self.counts[index] += upto - below
            below = upto
        self.counts[-1] += len(kept) - below
        self.total += sum(kept)

    def family(self, family: HistogramMetricFamily, labels: List[str]) -> None:
        cumulative = []
        running = 0
        for bound, count in zip(self.bounds, self.counts):
            running += count
            cumulative.append((_bound(bound), running))
        running += self.counts[-1]
        cumulative.append(("+Inf", running))
        family.add_metric(labels, cumulative, self.total)


def _bound(value: float) -> str:
    return repr(float(value))


class Metrics:
    """What the frontend counts. ``gauges`` is read at scrape time (queue depth, workers)."""

    def __init__(self, gauges: Optional[Callable[[], Dict[str, float]]] = None) -> None:
        self.gauges = gauges
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]
        self._pending: List[Sample] = []
        self._lock = threading.Lock()  # a scrape may run in another thread
        self._statuses: Dict[int, int] = {}
        self._phases = {phase: Buckets(LATENCY_BUCKETS) for phase in PHASES}
        self._restarts: Dict[str, int] = {}
        self._loads = Buckets(LOAD_BUCKETS)
        self._batches = Buckets(BATCH_BUCKETS)

    # --- recording (event loop) -------------------------------------------------

    def request(self, sample: Sample) -> None:
        pending = self._pending
        pending.append(sample)
        if len(pending) >= FOLD_EVERY:
            self.fold()

    def worker_restart(self, reason: str) -> None:
        self._restarts[reason] = self._restarts.get(reason, 0) + 1

    def model_loaded(self, seconds: float) -> None:
        with self._lock:
            self._loads.add(seconds)

    def batch_sent(self, size: int) -> None:
        """Dynamic batching sent ``size`` requests to a worker as one batch."""
        with self._lock:
            self._batches.add(size)

    def fold(self) -> None:
        """Move pending samples into the buckets."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        columns = list(zip(*pending))  # a column per field
        with self._lock:
            statuses = self._statuses
            for code in columns[0]:
                statuses[code] = statuses.get(code, 0) + 1
            for column, phase in enumerate(PHASES, 1):
                self._phases[phase].add_all(columns[column])

    # --- exposition -------------------------------------------------------------

    def render(self) -> Tuple[bytes, str]:
        self.fold()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            requests = CounterMetricFamily(
                "eikit_requests", "Invocations answered, by HTTP status.", labels=["status"]
            )
            for status, count in sorted(self._statuses.items()):
                requests.add_metric([str(status)], count)
            yield requests
            latency = HistogramMetricFamily(
                "eikit_request_duration_seconds",
                "Time per invocation by phase: total, queue (waiting for and reaching a "
                "worker), decode (input_fn), predict (predict_fn), encode (output_fn).",
                labels=["phase"],
            )
            for phase in PHASES:
                self._phases[phase].family(latency, [phase])
            yield latency
            loads = HistogramMetricFamily(
                "eikit_model_load_seconds", "Time one worker took to load the model."
            )
            self._loads.family(loads, [])
            yield loads
            batches = HistogramMetricFamily(
                "eikit_batch_size",
                "Requests per batch sent to a worker (dynamic batching; none while it is off).",
            )
            self._batches.family(batches, [])
            yield batches
        restarts = CounterMetricFamily(
            "eikit_worker_restarts",
            "Workers replaced, by reason (crash, timeout, load_failed).",
            labels=["reason"],
        )
        for reason, count in sorted(self._restarts.items()):
            restarts.add_metric([reason], count)
        yield restarts
        if self.gauges is not None:
            for name, value in sorted(self.gauges().items()):
                help_text = GAUGE_HELP.get(name, name)
                yield GaugeMetricFamily("eikit_" + name, help_text, value=value)


GAUGE_HELP = {
    "queue_depth": "Requests waiting in the frontend for a worker.",
    "inflight": "Requests sent to workers and not yet answered.",
    "workers_ready": "Workers holding a loaded model.",
    "workers": "Workers the pool keeps.",
    "models_loaded": "Multi-model: models loaded and serving.",
    "models_memory_bytes": "Multi-model: memory the loaded models' workers hold (PSS).",
    "models_evicted": "Multi-model: models unloaded to make room since the server started.",
}
