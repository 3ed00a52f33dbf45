"""``GET /ping`` as SageMaker's health check sends it, and the one wait for a server to be
ready that every command, harness and test uses (a process, a container, a remote URL)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import Callable, NamedTuple, Optional, Tuple

# How the server's /ping 503 body says the model will never load (eikit.server.boot).
LOAD_FAILED = "model failed to load"
POLL_S = 0.05


def probe(url: str, timeout: float = 2.0) -> Tuple[int, str]:
    """``(status, reason)`` of GET ``url``/ping: status 0 when nothing answers; ``reason`` is
    the error of a 503's JSON body (``model loading: ...``, ``model failed to load: ...``)."""
    try:
        with urllib.request.urlopen(url + "/ping", timeout=timeout) as response:
            response.read()
            return int(response.status), ""
    except urllib.error.HTTPError as error:
        try:
            reason = str(json.loads(error.read() or b"{}").get("error") or "")
        except (ValueError, AttributeError, OSError):
            reason = ""
        return int(error.code), reason
    except OSError:
        return 0, ""


def status(url: str, timeout: float = 2.0) -> int:
    """The status of GET ``url``/ping; 0 when nothing answers."""
    return probe(url, timeout)[0]


class Readiness(NamedTuple):
    """How a wait ended: ``status`` is the last /ping status (0: no answer); ``why_not`` is
    empty when it answered 200, else why it never will or did not in time; ``timed_out``
    when the deadline passed with the server still starting."""

    status: int
    why_not: str
    timed_out: bool = False


def wait_ready(
    url: str,
    deadline: float,
    gone: Optional[Callable[[], Optional[str]]] = None,
    interval: float = POLL_S,
) -> Readiness:
    """Poll ``url``/ping until 200 or ``time.monotonic()`` passes ``deadline``.

    Stops early when the server says the model failed to load, or when ``gone()`` returns
    a reason (the process or container serving it ended). Polls at a short interval, never
    a fixed sleep."""
    last = 0
    while True:
        last, reason = probe(url)
        if last == 200:
            return Readiness(200, "")
        if reason.startswith(LOAD_FAILED):
            return Readiness(last, reason)
        ended = gone() if gone is not None else None
        if ended is not None:
            return Readiness(last, ended)
        if time.monotonic() >= deadline:
            return Readiness(last, "no 200 in time (last /ping: %s)" % (last or "no answer"), True)
        time.sleep(interval)


def exited(process: Optional[subprocess.Popen]) -> Callable[[], Optional[str]]:
    """``gone`` for :func:`wait_ready`: says so once ``process`` has exited."""

    def check() -> Optional[str]:
        code = process.poll() if process is not None else None
        return None if code is None else "exited with code %s" % code

    return check


def wait_for_ping(url: str, deadline: float, process: Optional[subprocess.Popen] = None) -> int:
    """The last /ping status of :func:`wait_ready` (200 when ready; 0: no answer)."""
    return wait_ready(url, deadline, exited(process)).status
