"""One request's hold on a model of a multi-model endpoint: where ``submit`` sends it.

A model may be restarting (its pool could no longer serve) or dropped while a request
waits for it. A request that never reached a worker because the pool failed under it is
sent again to the model's new workers once they serve; if the model is dropped instead,
it gets 404, which makes SageMaker load the model again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Tuple

from eikit.errors import ModelLoadFailed, ModelNotFound, ModelNotReady
from eikit.server.model_state import LOADING, READY, Model, shown

RESUBMITS = 2  # a request follows at most this many restarts of its model


class ModelHandle:
    def __init__(self, model: Model, wait: float) -> None:
        self.model = model
        self.wait = wait  # longest wait for a load or restart (SAGEMAKER_STARTUP_TIMEOUT)

    async def submit(self, meta: bytes, body: bytes) -> Tuple[bytes, bytes]:
        model = self.model
        attempt = 0
        while True:
            if model.state == LOADING:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(model.settled.wait(), self.wait)
            if model.state != READY:
                raise ModelNotFound(
                    "model %s is not loaded (%s: %s)"
                    % (shown(model.name), model.state, model.reason)
                )
            pool = model.pool
            model.last_used = time.monotonic()
            try:
                return await pool.submit(meta, body)
            except (ModelLoadFailed, ModelNotReady):
                # Sent again only if it never ran: its pool failed while it waited for a
                # worker (a request a dying worker was running got its own error).
                if pool.failed_reason is None or attempt >= RESUBMITS:
                    raise
                attempt += 1
