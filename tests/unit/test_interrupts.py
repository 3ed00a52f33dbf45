"""eikit.interrupts: the first stop signal interrupts, one during a stop asks for a kill,
whatever disposition SIGINT had; the previous handlers come back."""

from __future__ import annotations

import signal

import pytest

from eikit import interrupts


def _raise(sig: int) -> None:
    signal.raise_signal(sig)  # runs the handler before it returns


@pytest.mark.parametrize("inherited", [signal.SIG_IGN, signal.default_int_handler])
def test_first_signal_interrupts_then_a_second_one_asks_for_a_kill(inherited) -> None:
    previous = signal.signal(signal.SIGINT, inherited)
    try:
        with interrupts.stop_signals() as state:
            assert interrupts.handled() and not interrupts.interrupted()
            with pytest.raises(KeyboardInterrupt):
                _raise(signal.SIGINT)
            assert interrupts.interrupted() and not interrupts.kill_requested()
            with interrupts.stopping():
                _raise(signal.SIGINT)  # counted, not raised: the stop goes on
                assert interrupts.kill_requested()
            assert state.received == [signal.SIGINT, signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is inherited
        assert not interrupts.handled()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigterm_is_handled_like_sigint() -> None:
    with interrupts.stop_signals():
        with pytest.raises(KeyboardInterrupt):
            _raise(signal.SIGTERM)
        with interrupts.stopping():
            _raise(signal.SIGTERM)
            assert interrupts.kill_requested()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_signal_during_a_stop_no_signal_began_kills_then_interrupts() -> None:
    """A normal stop (the work was done) and Ctrl-C meanwhile: kill at once, and the
    command stops too once the stop is over."""
    with interrupts.stop_signals():
        with interrupts.stopping():
            assert not interrupts.kill_requested()
        with pytest.raises(KeyboardInterrupt), interrupts.stopping():
            _raise(signal.SIGINT)
            assert interrupts.kill_requested()


def test_the_signal_that_began_a_stop_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="eikit.stopping")
    with interrupts.stop_signals():
        with pytest.raises(KeyboardInterrupt):
            _raise(signal.SIGINT)
        with interrupts.stopping():
            pass
        with interrupts.stopping():
            pass
    assert [r.getMessage() for r in caplog.records] == ["SIGINT received: stopping"]


def test_outside_stop_signals_nothing_is_requested() -> None:
    with interrupts.stopping():
        assert not interrupts.kill_requested() and not interrupts.handled()
