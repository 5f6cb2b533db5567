"""Multiprocess metrics with the cached pid: a forked worker still writes its own file,
and the scrape adds up every process's samples."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a fresh interpreter: prometheus_client picks its value class once per process.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    from prometheus_client import CollectorRegistry, multiprocess
    from reservation.metrics import Counter, multiprocess_values_with_cached_pid

    multiprocess_values_with_cached_pid()
    holds = Counter("bench_holds", "holds", registry=CollectorRegistry())
    holds.inc()
    child = os.fork()
    if child == 0:
        holds.inc(2)  # after the fork: must go to the child's own file
        os._exit(0)
    os.waitpid(child, 0)
    holds.inc()
    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape, path=sys.argv[1])
    print(scrape.get_sample_value("bench_holds_total"), os.getpid(), child)
    """
)


def test_a_forked_worker_counts_in_its_own_file(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.split()
    total, parent, child = float(out[0]), out[1], out[2]
    assert total == 4.0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted([f"counter_{parent}.db", f"counter_{child}.db"])
