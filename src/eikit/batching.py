"""A batch of requests through one worker's pipeline (dynamic batching: the frontend forms
the batches, ``eikit.server.batcher``). Each request gets its own answer or its own error.

Which way a batch runs is fixed by the script:

- **batch hooks** (the script sets ``BATCH_HOOKS = True``): ``transform_fn(model, inputs,
  content_types, accepts)``, or ``input_fn(inputs, content_types)`` ->
  ``predict_fn(data, model)`` (the script's or the runtime's) -> ``output_fn(prediction,
  accepts)``, where ``inputs`` holds each request's body as a user ``input_fn`` gets one, in
  the order the requests came. ``output_fn``/``transform_fn`` return a list with one answer
  per request, in the same order (an answer as a hook returns one, or an exception for that
  request alone). A hook that raises, or a list of the wrong length, fails every request of
  the batch. The context describes the batch's first request. Such a script gets lists of
  one when batching is off, so it works either way.
- **per-request hooks** (a script with request hooks and no opt-in): each request through
  them in turn, exactly as without batching.
- **the default hooks**: each request decoded by the runtime's ``input_fn`` (on the short
  path, by the codecs: arrays, stacked before they become the framework's); requests whose
  inputs stack (``ModelSession.batch_key``: same dtype and shape after the batch dimension)
  run as one ``predict_fn`` call, whose answer is split back (``ModelSession.split_prediction``) and
  encoded per request by its Accept. Inputs that do not stack, or a stacked call that fails
  or cannot be split, run request by request, so each gets what it would get alone.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Dict, List, Optional, Tuple, Union

from eikit import codecs
from eikit.errors import InternalError
from eikit.pipeline import NOT_TIMED, Pipeline, Result, user_body

log = logging.getLogger(__name__)

Timings = Tuple[float, float, float]
Outcome = Tuple[Union[Result, Exception], Timings]  # an answer or an error, and its timings


@dataclass
class Request:
    body: bytes
    content_type: Optional[str]
    accept: Optional[str]
    headers: bytes
    request_id: str


def invoke_batch(pipeline: Any, requests: List[Request]) -> List[Outcome]:
    """One outcome per request, in order. A runtime's own pipeline (not a ``Pipeline``)
    batches with its ``invoke_batch(requests)`` if it has one, else one request at a time."""
    if isinstance(pipeline, Pipeline):
        if pipeline.hooks.batch_hooks:
            return _batch_hooks(pipeline, requests)
        if pipeline.short_path or not _has_request_hooks(pipeline):
            return _stacked(pipeline, requests)
    else:
        own = getattr(pipeline, "invoke_batch", None)
        if own is not None:
            return list(own(requests))
    return [alone(pipeline, request) for request in requests]


def takes_lists(pipeline: Any) -> bool:
    """Whether the script opted in to batch hooks, so that even a lone request must reach
    them as a batch (of one)."""
    delegate = getattr(pipeline, "delegate", None)  # a runtime pipeline running core hooks
    inner = delegate if isinstance(delegate, Pipeline) else pipeline
    return isinstance(inner, Pipeline) and inner.hooks.batch_hooks


def _has_request_hooks(pipeline: Pipeline) -> bool:
    hooks = pipeline.hooks
    return any(hooks.get(name) for name in ("transform_fn", "input_fn", "predict_fn", "output_fn"))


def alone(pipeline: Any, request: Request) -> Outcome:
    """``request`` through ``pipeline.invoke``, as without batching."""
    try:
        result = pipeline.invoke(
            request.body, request.content_type, request.accept, request.headers, request.request_id
        )
    except Exception as exc:
        return exc, pipeline.timings
    return result, pipeline.timings


# --- the default hooks, stacked -------------------------------------------------------


@dataclass
class _Decoded:
    index: int
    data: Any
    rows: int
    media: str
    decode_time: float


def _stacked(pipeline: Pipeline, requests: List[Request]) -> List[Outcome]:
    session = pipeline.session
    outcomes: List[Optional[Outcome]] = [None] * len(requests)
    groups: Dict[Any, List[_Decoded]] = OrderedDict()
    singles: List[_Decoded] = []
    first = requests[0]
    pipeline.context.start_request(first.headers, first.request_id)
    for index, request in enumerate(requests):
        started = perf_counter()
        try:
            media = codecs.negotiate(request.accept, pipeline.default_accept)
            data = _decode(pipeline, request.body, request.content_type or codecs.JSON)
            key = session.batch_key(data)
        except Exception as exc:
            outcomes[index] = (exc, NOT_TIMED)
            continue
        decoded = _Decoded(index, data, key[1] if key else 0, media, perf_counter() - started)
        if key is None:
            singles.append(decoded)
        else:
            groups.setdefault(key[0], []).append(decoded)
    stacked = calls = 0
    for group in groups.values():
        if len(group) > 1 and _predict_group(pipeline, group, outcomes):
            stacked += len(group)
            calls += 1
        else:
            singles.extend(group)
    log.debug(
        "batch of %d: %d stacked in %d call(s), %d alone",
        len(requests),
        stacked,
        calls,
        len(singles),
    )
    for decoded in singles:
        started = perf_counter()
        try:
            prediction = _predict(pipeline, decoded.data)
        except Exception as exc:
            outcomes[decoded.index] = (exc, (decoded.decode_time, math.nan, math.nan))
            continue
        outcomes[decoded.index] = _encode(pipeline, decoded, prediction, perf_counter() - started)
    return [outcome if outcome is not None else _lost() for outcome in outcomes]


def _decode(pipeline: Pipeline, body: bytes, content_type: str) -> Any:
    """A request's input as the pipeline's path takes it: the short path's decoded arrays
    (stacked before they become the framework's, once), or what the default input_fn gives."""
    if pipeline.short_path:
        return codecs.decode(body, content_type)
    return pipeline.session.input_fn(body, content_type)


def _predict(pipeline: Pipeline, data: Any) -> Any:
    if pipeline.short_path:
        return pipeline.session.predict(pipeline.model, data)  # encodable: split as arrays
    return pipeline.session.predict_fn(data, pipeline.model)


def _predict_group(pipeline: Pipeline, group: List[_Decoded], outcomes: List[Any]) -> bool:
    """Run ``group`` as one stacked call; False (nothing answered) when it cannot be."""
    session = pipeline.session
    started = perf_counter()
    try:
        prediction = _predict(pipeline, session.stack_inputs([d.data for d in group]))
        parts = session.split_prediction(prediction, [d.rows for d in group])
    except Exception as exc:  # one request may spoil a stacked call: let each run alone
        log.debug(
            "a stacked batch of %d failed (%s: %s); running each alone",
            len(group),
            type(exc).__name__,
            exc,
        )
        return False
    if parts is None or len(parts) != len(group):
        return False
    predict_time = perf_counter() - started
    for decoded, part in zip(group, parts):
        outcomes[decoded.index] = _encode(pipeline, decoded, part, predict_time)
    return True


def _encode(pipeline: Pipeline, decoded: _Decoded, prediction: Any, predict_time: float) -> Outcome:
    started = perf_counter()
    try:
        if pipeline.short_path:
            result = Result(codecs.encode(prediction, decoded.media), decoded.media)
        else:
            produced = pipeline.session.output_fn(prediction, decoded.media)
            result = pipeline._finish(produced, decoded.media)
    except Exception as exc:
        return exc, (decoded.decode_time, predict_time, math.nan)
    return result, (decoded.decode_time, predict_time, perf_counter() - started)


def _lost() -> Outcome:
    return InternalError("the batch gave no answer for this request"), NOT_TIMED


# --- the script's batch hooks ---------------------------------------------------------


def _batch_hooks(pipeline: Pipeline, requests: List[Request]) -> List[Outcome]:
    outcomes: List[Optional[Outcome]] = [None] * len(requests)
    inputs: List[Any] = []
    content_types: List[str] = []
    accepts: List[str] = []
    taken: List[int] = []
    for index, request in enumerate(requests):
        content_type = request.content_type or codecs.JSON
        try:
            inputs.append(user_body(request.body, content_type))
        except Exception as exc:  # a body that is not UTF-8: that request's 400
            outcomes[index] = (exc, NOT_TIMED)
            continue
        content_types.append(content_type)
        accept = request.accept
        accepts.append(pipeline.default_accept if codecs.is_default_accept(accept) else str(accept))
        taken.append(index)
    if taken:
        first = requests[taken[0]]
        pipeline.context.start_request(first.headers, first.request_id)
        started = perf_counter()
        try:
            answers = _run_batch_hooks(pipeline, inputs, content_types, accepts)
        except Exception as exc:
            timings = (math.nan, perf_counter() - started, math.nan)
            for index in taken:
                outcomes[index] = (exc, timings)
        else:
            timings = (math.nan, perf_counter() - started, math.nan)
            for index, answer, accept in zip(taken, answers, accepts):
                outcomes[index] = (_answer(pipeline, answer, accept), timings)
    return [outcome if outcome is not None else _lost() for outcome in outcomes]


def _run_batch_hooks(
    pipeline: Pipeline, inputs: List[Any], content_types: List[str], accepts: List[str]
) -> List[Any]:
    context = pipeline.context
    if pipeline._transform is not None:
        name = "transform_fn"
        answers = pipeline._transform(
            pipeline.model, inputs, content_types, accepts, context=context
        )
    else:
        assert pipeline._input is not None and pipeline._output is not None  # user_module
        name = "output_fn"
        data = pipeline._input(inputs, content_types, context=context)
        if pipeline._predict is not None:
            prediction = pipeline._predict(data, pipeline.model, context=context)
        else:
            prediction = pipeline.session.predict_fn(data, pipeline.model)
        answers = pipeline._output(prediction, accepts, context=context)
    if not isinstance(answers, (list, tuple)) or len(answers) != len(inputs):
        got = (
            "%d answers" % len(answers)
            if isinstance(answers, (list, tuple))
            else type(answers).__name__
        )
        raise InternalError(
            "%s with BATCH_HOOKS = True must return a list of one answer per request: "
            "got %s for %d requests" % (name, got, len(inputs))
        )
    return list(answers)


def _answer(pipeline: Pipeline, answer: Any, accept: str) -> Union[Result, Exception]:
    if isinstance(answer, Exception):
        return answer
    try:
        return pipeline._finish(answer, accept)
    except Exception as exc:
        return exc
