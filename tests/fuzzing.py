"""The house settings for hypothesis: the same cases in every run, scaled by one variable.

``EIKIT_FUZZ_SCALE=10`` runs ten times as many cases (locally; CI runs scale 1).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("EIKIT_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> Any:
    """``examples`` cases (times SCALE), derandomized, no example database, no deadline."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )
