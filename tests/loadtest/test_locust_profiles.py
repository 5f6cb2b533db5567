"""Each locust profile runs headless against a real ``fairseat serve`` (a short version of
the 60-s runs in docs/load-testing.md) and ends with the invariant checker passing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reservation.runtime.ports import free_port
from reservation.runtime.procutil import throwaway_dir
from tests.runtime.test_serve import Served, _close, _start

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with throwaway_dir("fairseat-locust-") as folder:
        # _start keeps reading the server's log (seat orders log each notification).
        s = _start(folder / "data", free_port())
        try:
            yield s
        finally:
            _close(s)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("profile", "extra"),
    [
        ("hospital", ["--doctors", "2", "--slots-per-doctor", "2", "--capacity", "3"]),
        ("vaccine", ["--capacity", "3"]),
        ("rush", ["--capacity", "3"]),
        # Explicit seats (the default) with abandons and refunds frequent enough to happen.
        (
            "rush",
            [
                *("--product", "seats", "--capacity", "3"),
                *("--abandon-share", "0.3", "--return-share", "0.5"),
            ],
        ),
        ("rush", ["--product", "slots", "--capacity", "3"]),
        # Distributed: a master and two forked workers. The users run in the workers, whose
        # citizens must not collide and whose counts must reach the master's summary.
        ("hospital", ["--doctors", "2", "--slots-per-doctor", "2", "--processes", "2"]),
        ("vaccine", ["--capacity", "3", "--processes", "2"]),
        ("rush", ["--capacity", "3", "--processes", "2"]),
    ],
    ids=[
        "hospital",
        "vaccine",
        "rush",
        "rush-seats",
        "rush-slots",
        "hospital-2-processes",
        "vaccine-2-processes",
        "rush-2-processes",
    ],
)
def test_a_profile_runs_headless_and_the_invariants_pass(
    served: Served, profile: str, extra: list[str]
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "loadtest" / f"locustfile_{profile}.py"),
            "--headless",
            "-u",
            "20",
            "-r",
            "20",
            "-t",
            "8s",
            "--host",
            served.url,
            "--data-dir",
            str(served.data_dir),
            "--release-in",
            "2",
            "--only-summary",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "invariants: PASS" in out, out[-3000:]
    # The summary: somebody got a place, counted wherever the users ran.
    scope = "2 worker processes" if "--processes" in extra else "this process"
    summary = re.search(rf"\({scope}\): .*\bconfirmed (\d+)", out)
    assert summary is not None and int(summary.group(1)) > 0, out[-3000:]
    assert "register 409" not in out, out[-3000:]  # every process its own citizens
