"""Dynamic batching for TensorFlow with no script: requests that go to the same model,
version and signature as TF Serving ``{"instances": [...]}`` predict requests are sent as
one request with their instances joined, and the ``predictions`` come back split, one list
per request in order. Anything else (``inputs``, ``examples``, classify/regress, a scripted
pipeline, an answer whose predictions do not add up, a joined call that fails) runs request
by request, so every request gets what it would get alone.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any, Dict, List, Optional, Protocol, Tuple

from eikit.batching import Outcome, Request, alone
from eikit.pipeline import NOT_TIMED, Result
from eikit_tensorflow import invocation
from eikit_tensorflow.executor import Executor

log = logging.getLogger(__name__)


class TensorFlowPipeline(Protocol):
    """What batching needs of eikit_tensorflow.handling.TensorFlowPipeline, whose
    ``invoke_batch`` calls this module (and whose ``invoke`` answers a request alone)."""

    context: Any
    default_model: str
    executor: Optional[Executor]

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """One request, as without batching."""


class _Decoded:
    def __init__(self, index: int, media: str, where: Any, instances: List[Any], took: float):
        self.index = index
        self.media = media
        self.where = where
        self.instances = instances
        self.decode_time = took


def invoke_batch(pipeline: TensorFlowPipeline, requests: List[Request]) -> List[Outcome]:
    outcomes: List[Optional[Outcome]] = [None] * len(requests)
    groups: Dict[Tuple[Any, ...], List[_Decoded]] = {}
    solo: List[int] = []
    context = pipeline.context
    for index, request in enumerate(requests):
        started = perf_counter()
        try:
            context.start_request(request.headers, request.request_id)
            attributes = invocation.parse_tfs_custom_attributes(context.custom_attributes)
            media = invocation.check_accept(request.accept)
            where = invocation.target(attributes, pipeline.default_model)
            body = invocation.default_request(request.body, request.content_type)
        except Exception as exc:
            outcomes[index] = (exc, NOT_TIMED)
            continue
        instances = body.get("instances")
        extra = {key: value for key, value in body.items() if key != "instances"}
        if where.method != "predict" or not isinstance(instances, list) or not instances:
            solo.append(index)
            continue
        if set(extra) - {"signature_name"}:
            solo.append(index)
            continue
        key = (where.model, where.version, extra.get("signature_name"))
        decoded = _Decoded(index, media, where, instances, perf_counter() - started)
        groups.setdefault(key, []).append(decoded)
    for key, group in groups.items():
        if len(group) < 2 or not _joined(pipeline, key, group, outcomes):
            solo.extend(decoded.index for decoded in group)
    for index in sorted(solo):
        outcomes[index] = alone(pipeline, requests[index])
    return [
        outcome if outcome is not None else alone(pipeline, requests[i])
        for i, outcome in enumerate(outcomes)
    ]


def _joined(
    pipeline: TensorFlowPipeline,
    key: Tuple[Any, ...],
    group: List[_Decoded],
    outcomes: List[Optional[Outcome]],
) -> bool:
    assert pipeline.executor is not None
    where = group[0].where
    joined: Dict[str, Any] = {"instances": [i for d in group for i in d.instances]}
    if key[2] is not None:
        joined["signature_name"] = key[2]
    started = perf_counter()
    try:
        answer = pipeline.executor.request(where.model, where.version, where.method, joined)
    except Exception as exc:  # one request may spoil the joined call: each runs alone
        log.debug("a joined batch of %d failed (%s); running each alone", len(group), exc)
        return False
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if (
        not isinstance(predictions, list)
        or len(predictions) != len(joined["instances"])
        or set(answer) != {"predictions"}
    ):
        return False
    predict_time = perf_counter() - started
    start = 0
    for decoded in group:
        part = predictions[start : start + len(decoded.instances)]
        start += len(decoded.instances)
        encode_started = perf_counter()
        body = invocation.dumps({"predictions": part})
        timings = (decoded.decode_time, predict_time, perf_counter() - encode_started)
        outcomes[decoded.index] = (Result(body, decoded.media), timings)
    log.debug("batch: %d stacked in one TF Serving request", len(group))
    return True
