"""Ctrl-C and SIGTERM for eikit's commands, whatever disposition they inherited.

A non-interactive shell starts a background job (``cmd &`` without job control) with SIGINT
ignored, CPython installs its KeyboardInterrupt handler only when SIGINT is at its default
when it starts, and exec keeps an ignored signal ignored: so ``eikit local --image`` started
under a CI script in the background never saw Ctrl-C and served on. ``stop_signals()``
installs eikit's own handler for SIGINT and SIGTERM instead:

- the first signal raises KeyboardInterrupt in the main thread: the command stops what it
  runs, gracefully;
- a signal that arrives while something is stopping (``stopping()``) only counts, and
  ``kill_requested()`` tells the stopping code to kill at once (Ctrl-C again kills it).

The previous handlers are put back on exit. Stop phases are logged to ``eikit.stopping``
(``say``); the command line shows them once a stop signal has arrived.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from types import FrameType
from typing import Any, Dict, Iterator, List, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
stop_log = logging.getLogger("eikit.stopping")


class StopSignals:
    """What arrived while ``stop_signals()`` was in force."""

    def __init__(self) -> None:
        self.received: List[int] = []
        self.stopping = False
        self.stop_began_at = 0  # len(received) when the current stop began
        self.announced = 0  # signals already logged

    def handle(self, signum: int, frame: Optional[FrameType]) -> None:
        self.received.append(signum)
        if not self.stopping:
            self.stopping = True
            self.stop_began_at = len(self.received)
            raise KeyboardInterrupt

    def kill_requested(self) -> bool:
        return self.stopping and len(self.received) > self.stop_began_at


_active: Optional[StopSignals] = None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "signal %d" % signum


@contextlib.contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Handle SIGINT and SIGTERM as described above while in the block (main thread only:
    elsewhere signals cannot be handled, and the block changes nothing)."""
    global _active
    state = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous: Dict[int, Any] = {}
    outer = _active
    try:
        for stop_signal in STOP_SIGNALS:
            previous[int(stop_signal)] = signal.signal(stop_signal, state.handle)
        _active = state
        yield state
    finally:
        _active = outer
        for sig, handler in previous.items():
            # None: a handler installed outside Python; the default is the closest we have
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """Mark a stop in progress: a stop signal now only asks for ``kill_requested()``. Logs
    the signal that began the stop, if one did."""
    state = _active
    if state is None:
        yield
        return
    if len(state.received) > state.announced:
        say("%s received: stopping" % signal_name(state.received[-1]))
        state.announced = len(state.received)
    began = state.stopping
    if not began:
        state.stopping = True
        state.stop_began_at = len(state.received)
    try:
        yield
    except BaseException:
        if not began and not state.kill_requested():
            state.stopping = False
        raise
    if not began:
        if state.kill_requested():  # Ctrl-C during a stop no signal began: stop the command too
            raise KeyboardInterrupt
        state.stopping = False  # the next signal interrupts again


def kill_requested() -> bool:
    """A stop signal arrived during the current stop: kill, don't wait."""
    return _active is not None and _active.kill_requested()


def handled() -> bool:
    """``stop_signals()`` is in force: a stop signal during a stop kills."""
    return _active is not None


def interrupted() -> bool:
    """A stop signal has arrived (the user is waiting for the command to stop)."""
    return _active is not None and bool(_active.received)


def say(message: str) -> None:
    """Log one stop phase (``eikit.stopping``, INFO)."""
    stop_log.info("%s", message)


class ShowOnceInterrupted(logging.Filter):
    """For the command line: stop phases are shown once the user asked to stop (or when
    they are warnings); a normal end stays quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or interrupted()
