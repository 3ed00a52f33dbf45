"""tests/conftest.py fails a test that leaves a signal disposition or a thread behind, names
it, and puts the disposition back so the next test starts clean."""

from __future__ import annotations

from pathlib import Path

import pytest

LEAKY = """
import signal
import threading

stop = threading.Event()


def test_ignores_sigusr1():
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def test_sigusr1_is_back_for_the_next_test():
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_starts_a_thread():
    threading.Thread(target=stop.wait, name="leaky-thread", daemon=True).start()


def test_ends_the_thread():
    stop.set()


def test_clean():
    threading.Thread(target=lambda: None, name="ended-thread").start()
"""


def test_the_leak_check_names_what_a_test_left_behind(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text())
    pytester.makepyfile(test_leaky=LEAKY)
    monkeypatch.setenv("EIKIT_TEST_LEAK_GRACE_S", "0.5")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_ignores_sigusr1 left process-wide state behind:",
            "*SIGUSR1 disposition changed from <Handlers.SIG_DFL: 0> to <Handlers.SIG_IGN: 1>",
            "*test_starts_a_thread left process-wide state behind:",
            "*thread 'leaky-thread' (daemon) still running",
        ],
        consecutive=False,
    )
