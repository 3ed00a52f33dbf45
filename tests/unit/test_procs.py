"""eikit.procs: the process tree and its memory, read from /proc and cgroups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eikit import procs

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")


def test_process_tree_and_memory_are_read_from_proc():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in procs.children(os.getpid())
        assert child.pid in procs.tree(os.getpid())
        assert procs.tree_rss(os.getpid()) > procs.rss_bytes(os.getpid()) > 0
    finally:
        child.kill()
        child.wait()
    assert procs.rss_bytes(child.pid) == 0


def test_proportional_memory_counts_a_child_and_shares_what_is_shared():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        me = procs.pss_bytes(os.getpid())
        assert 0 < me <= procs.rss_bytes(os.getpid())
        assert procs.trees_pss([os.getpid()]) > me  # the child counts
        # Each process is counted once, however often it is named.
        assert procs.trees([os.getpid(), child.pid]) == procs.trees([os.getpid()])
        assert child.pid in procs.trees([os.getpid()])
    finally:
        child.kill()
        child.wait()
    assert procs.pss_bytes(child.pid) == 0


def test_memory_limit_is_the_cgroups_when_it_is_lower(tmp_path: Path):
    total = procs.memory_limit_bytes(tmp_path)  # no cgroup files: the machine's memory
    assert total and total > 0
    (tmp_path / "memory.max").write_text("max\n")  # cgroup v2 without a limit
    assert procs.memory_limit_bytes(tmp_path) == total
    (tmp_path / "memory.max").write_text("%d\n" % (256 * 1024 * 1024))
    assert procs.memory_limit_bytes(tmp_path) == 256 * 1024 * 1024
    (tmp_path / "memory.current").write_text("%d\n" % (200 * 1024 * 1024))
    assert procs.available_bytes(tmp_path) == 56 * 1024 * 1024
