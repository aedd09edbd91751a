"""`bench.spy`'s process-tree instruments: the daemon's child processes are found and counted. No timing is
asserted: only that the processes are there and their CPU figures are consistent."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.spy import TreeCpu, descendants, proc_name, tree_rss_kib

#: a child that burns CPU for 0.3 s, then waits for its stdin to close
_BUSY_THEN_WAIT = "import sys, time\nend = time.time() + 0.3\nwhile time.time() < end: pass\nsys.stdin.read()"


def test_tree_cpu_lists_every_process_below_the_root_and_sums_them() -> None:
    child = subprocess.Popen([sys.executable, "-c", _BUSY_THEN_WAIT], stdin=subprocess.PIPE)
    try:
        assert child.pid in descendants(os.getpid())
        assert descendants(child.pid) == [child.pid]
        assert "python" in proc_name(child.pid) and "-c" in proc_name(child.pid)
        assert tree_rss_kib(os.getpid()) > tree_rss_kib(child.pid) > 0
        tree = TreeCpu(os.getpid())
        tree.start()
        result = tree.stop()
        assert {pid for pid, _, _ in result.per_process} >= {os.getpid(), child.pid}
        assert all(cpu >= 0 for _, _, cpu in result.per_process)
        assert result.total_s >= 0 and result.wall_s > 0
    finally:
        child.kill()
        child.wait()
    assert proc_name(child.pid) == "(gone)"
