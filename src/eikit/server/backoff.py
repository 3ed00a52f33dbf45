"""When to retry a worker that could not be replaced, and when to give up.

After the first load, a replacement that cannot start, fails to load, exits or outlasts
``SAGEMAKER_STARTUP_TIMEOUT`` is retried: 1 s after its first failure, then 2, 4, ... up to
30 s apart, for as long as another worker serves. Only ``limit`` failed loads in a row
while no worker serves (counted over all workers) give up, which marks the model failed.
"""

from __future__ import annotations

from typing import Dict, Optional

REPLACE_DELAY = 0.1  # a serving worker exited: start its replacement almost at once
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


class ReplacementPolicy:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: never give up
        self.failures: Dict[int, int] = {}  # worker index -> failed loads in a row
        self.unserved = 0  # failed loads in a row while no worker served

    def served(self, index: int) -> None:
        """Worker ``index`` loaded: its backoff and the no-worker count start over."""
        self.failures.pop(index, None)
        self.unserved = 0

    def failed(self, index: int, serving: bool) -> Optional[float]:
        """A load of worker ``index`` failed; ``serving``: another worker is ready.

        Returns the seconds to wait before the next try, or None to give up.
        """
        failures = self.failures[index] = self.failures.get(index, 0) + 1
        if not serving:
            self.unserved += 1
            if self.limit and self.unserved >= self.limit:
                return None
        return min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX)

    def attempts(self, index: int) -> int:
        return self.failures.get(index, 0)
