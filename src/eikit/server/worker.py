"""A worker process: loads the model once, then answers requests from the frontend.

Spawned by the frontend as ``python -m eikit.server.worker FD``, or forked by the template
process (``eikit.server.forkserver``) which then calls ``run``; FD is its end of a
socketpair. It never parses HTTP and exits when its parent (the frontend, or the template,
which dies with the frontend) goes away.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from eikit import batching, logs
from eikit.accelerators import ProbeResult
from eikit.context import Context
from eikit.errors import (
    EikitError,
    UserScriptError,
    client_message,
    code_of,
    error_body,
    out_of_memory,
    status_of,
)
from eikit.pipeline import Pipeline, Result
from eikit.runtime import find_runtime
from eikit.server import protocol
from eikit.settings import Settings
from eikit.user_module import load_user_hooks, prepare_path

log = logging.getLogger("eikit.server.worker")  # not __main__ when run with -m


def die_with_parent(parent: Optional[int] = None) -> None:
    """Linux: get SIGKILL if the parent dies, so no worker is ever orphaned. ``parent``:
    the pid it must have, for a parent that may already have died before this was set
    (then this process was re-parented, and leaves at once)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def ignore_stop_signals() -> None:
    """SIGINT and SIGTERM sent to the whole process group (Ctrl-C, systemd, ``tini -g``)
    must not kill a worker mid-request: the frontend drains, then closes the worker's
    socket. A handler that does nothing, not SIG_IGN: an ignored signal stays ignored in
    programs the user's script starts, a handler is reset to the default by exec."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _ignore)


def _ignore(sig: int, frame: Any) -> None:
    pass


def load_pipeline(
    settings: Settings,
    runtime_name: str,
    chain: List[ProbeResult],
    index: int,
    model_dir: Optional[Path] = None,
    packages: Optional[Path] = None,
) -> Pipeline:
    """Import the user script, then load the model on the first device in ``chain`` that works.

    ``model_dir`` (a multi-model endpoint's model; default ``SAGEMAKER_BASE_DIR/model``)
    holds the model and its ``code/``; ``packages`` is where its requirements went.
    ``index`` picks the device where there are several (worker ``index`` on GPU
    ``index % count``)."""
    model_dir = model_dir or settings.model_dir
    code_dir = model_dir / "code"
    runtime = find_runtime(runtime_name)
    for key, value in runtime.worker_environment(chain[0], settings, index).items():
        os.environ.setdefault(key, value)  # before the script imports the framework
    os.environ.update(runtime.worker_pinning(chain[0], settings, index))  # this worker's device
    prepare_path(code_dir, packages or settings.requirements_target)
    hooks = load_user_hooks(code_dir, settings.program)
    for position, accelerator in enumerate(chain):
        try:
            session = runtime.session(accelerator, settings, index)
            gpu_id = (
                int(session.device.split(":")[1]) if session.device.startswith("cuda:") else None
            )
            context = Context(str(model_dir), accelerator.kind, session.device, gpu_id)
            pipeline = session.make_pipeline(hooks, context, settings.default_accept) or Pipeline(
                hooks, session, context, settings.default_accept
            )
            pipeline.load()
        except UserScriptError:
            raise
        except Exception as exc:
            # Out of memory on a multi-model endpoint is a 507, not a reason to fall back: it
            # makes SageMaker unload other models, which frees the device for this one.
            if position + 1 >= len(chain) or (settings.multi_model and out_of_memory(exc)):
                raise
            log.warning(
                "model did not load on %s (%s: %s); falling back to %s",
                accelerator.kind,
                type(exc).__name__,
                exc,
                chain[position + 1].kind,
            )
            continue
        log.info("model loaded on %s (%s)", accelerator.kind, session.device)
        return pipeline
    raise RuntimeError("no accelerator to load on")


def handle(pipeline: Pipeline, meta: bytes, body: bytes) -> Tuple[bytes, bytes]:
    """One request: response meta and body. Errors become their status, never a crash."""
    request_id, content_type, accept, headers = protocol.parse_request_meta(meta)
    token = logs.request_id.set(request_id)
    try:
        return _handle(pipeline, request_id, content_type, accept, headers, body)
    finally:
        logs.request_id.reset(token)


def _handle(
    pipeline: Pipeline,
    request_id: str,
    content_type: Optional[str],
    accept: Optional[str],
    headers: bytes,
    body: bytes,
) -> Tuple[bytes, bytes]:
    try:
        result = pipeline.invoke(body, content_type, accept, headers, request_id)
    except Exception as exc:
        return reply(pipeline, exc, pipeline.timings)
    return reply(pipeline, result, pipeline.timings)


def handle_batch(pipeline: Pipeline, meta: bytes, body: bytes, single: bool = False) -> bytes:
    """A BATCH frame's requests (or, ``single``, one REQUEST's), run together: their
    RESPONSE frames, in order."""
    requests = []
    items = [(meta, body)] if single else protocol.parse_batch(meta, body)
    for item_meta, item_body in items:
        request_id, content_type, accept, headers = protocol.parse_request_meta(item_meta)
        requests.append(batching.Request(item_body, content_type, accept, headers, request_id))
    token = logs.request_id.set(",".join(request.request_id for request in requests))
    try:
        outcomes = batching.invoke_batch(pipeline, requests)
    finally:
        logs.request_id.reset(token)
    frames = []
    for outcome, timings in outcomes:
        response_meta, response_body = reply(pipeline, outcome, timings)
        frames.append(protocol.head(protocol.RESPONSE, 0, response_meta, len(response_body)))
        frames.append(response_body)
    return b"".join(frames)


def reply(
    pipeline: Pipeline, outcome: Union[Result, Exception], timings: Tuple[float, float, float]
) -> Tuple[bytes, bytes]:
    """Response meta and body for an answer or an error."""
    if isinstance(outcome, Exception):
        exc = outcome
        status = status_of(exc)
        if status >= 500 and not isinstance(exc, EikitError):
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            log.error("request failed:\n%s", trace.rstrip())
        elif status >= 500:
            log.error("request failed: %s", exc)
        else:
            logs.rejected(log, status, exc)  # no request content at INFO
        code = code_of(exc)
        headers_out = pipeline.context.response()[2]  # what the script set, but its type
        return (
            protocol.response_meta(status, "application/json", headers_out, timings),
            error_body(client_message(exc), code),
        )
    result = outcome
    meta = protocol.response_meta(result.status, result.content_type, result.headers, timings)
    return meta, result.body


def serve_forever(sock: socket.socket) -> int:
    reader = protocol.FrameReader(sock)
    init = reader.read()
    if init is None or init[0] != protocol.INIT:
        return 2
    meta: Dict[str, Any] = json.loads(init[2])
    settings = Settings(**meta["settings"])
    index = int(meta["index"])
    logs.configure(settings.log_level, role="worker-%d" % index)
    chain = [ProbeResult(**item) for item in meta["chain"]]
    model_dir = Path(meta["model_dir"]) if meta.get("model_dir") else None
    packages = Path(meta["packages"]) if meta.get("packages") else None
    try:
        pipeline = load_pipeline(
            settings,
            meta["runtime"],
            chain,
            index + int(meta.get("device_offset", 0)),
            model_dir,
            packages,
        )
    except Exception as exc:
        log.error("model load failed:\n%s", traceback.format_exc().rstrip())
        message = "%s: %s" % (type(exc).__name__, exc)
        failure = {"message": message, "code": code_of(exc)}
        protocol.send(sock, protocol.FAILED, 0, protocol.control(failure))
        return 1
    protocol.send(
        sock,
        protocol.READY,
        0,
        protocol.control(
            {"accelerator": pipeline.context.accelerator, "device": pipeline.context.device}
        ),
    )
    takes_lists = batching.takes_lists(pipeline)
    while True:
        frame = reader.read()
        if frame is None:
            return 0
        kind, request_id, request_meta, body = frame
        if kind == protocol.BATCH:
            sock.sendall(handle_batch(pipeline, request_meta, body))
            continue
        if kind != protocol.REQUEST:
            continue
        if takes_lists:  # the script's hooks take lists: a lone request is a batch of one
            sock.sendall(handle_batch(pipeline, request_meta, body, single=True))
            continue
        response_meta, response_body = handle(pipeline, request_meta, body)
        protocol.send(sock, protocol.RESPONSE, request_id, response_meta, response_body)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run(int(args[0]))


def run(fd: int, parent: Optional[int] = None) -> int:
    """Serve on the socket ``fd`` until the frontend closes it, then leave (``os._exit``)."""
    die_with_parent(parent)
    ignore_stop_signals()
    sock = socket.socket(fileno=fd)
    try:
        code = serve_forever(sock)
    except (BrokenPipeError, ConnectionResetError):
        code = 0
    finally:
        sock.close()
    # The frontend is done with this worker. Leave without tearing the interpreter down:
    # with a framework loaded that takes seconds (measured: 1.6 s for torch), and a model
    # unloaded to make room for another must free its memory now, not then.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
