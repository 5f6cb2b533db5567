"""The bench's CPU meter counts a process tree whole: children alive now and reaped."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from reservation.bench_http import CpuMeter, cpu_seconds, tree_cpu_seconds

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_a_tree_counts_its_live_and_its_reaped_children() -> None:
    me = os.getpid()
    before = tree_cpu_seconds(me)
    child = subprocess.Popen([sys.executable, "-c", BURN + "input()"], stdin=subprocess.PIPE)
    try:
        # While it runs, its CPU counts as a live child's ...
        deadline = time.monotonic() + 30
        while cpu_seconds(child.pid) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tree_cpu_seconds(me) - before >= 0.25
    finally:
        child.communicate(b"\n")
    # ... and once reaped, as the parent's reaped children's.
    assert tree_cpu_seconds(me) - before >= 0.25
    assert tree_cpu_seconds(2**22 + 7) == 0.0  # no such process


def test_the_meter_reports_trees_by_name() -> None:
    meter = CpuMeter({}, {"postgres": os.getpid()})
    assert set(meter.snapshot()) == {"postgres", "client"}
