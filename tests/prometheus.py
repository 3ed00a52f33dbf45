"""Prometheus text exposition, flattened for assertions."""

from __future__ import annotations

from typing import Dict

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> Dict[str, float]:
    """``name{label="v",...}`` (labels sorted) -> value, for every sample in ``text``."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join('%s="%s"' % item for item in sorted(sample.labels.items()))
            found["%s{%s}" % (sample.name, labels)] = sample.value
    return found
