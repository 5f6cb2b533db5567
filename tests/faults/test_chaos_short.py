"""``fairseat chaos --short`` end to end: throwaway servers, real processes, SIGKILLs.

Runs by default (about a minute); the full run (64 faults) is opt-in: ``FAIRSEAT_SLOW=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

LAST_LINE = re.compile(r"faults=(\d+) confirmed=(\d+) lost=(\d+) oversold=(\d+) duplicates=(\d+)")

slow = pytest.mark.skipif(
    os.environ.get("FAIRSEAT_SLOW") != "1", reason="long chaos run: set FAIRSEAT_SLOW=1"
)


def run_chaos(*args: str, timeout: float) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "reservation.cli", "--log-level", "ERROR", "chaos", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout.strip().splitlines()


def check(code: int, lines: list[str], min_faults: int) -> None:
    transcript = "\n".join(lines[-40:])
    match = LAST_LINE.fullmatch(lines[-1]) if lines else None
    assert match is not None, transcript
    faults, confirmed, lost, oversold, duplicates = map(int, match.groups())
    assert faults >= min_faults, transcript
    assert confirmed > 0, transcript
    assert (lost, oversold, duplicates) == (0, 0, 0), transcript
    assert code == 0, transcript
    # Redis and Postgres agree after the run. The one tolerated difference: an account's
    # cap entry for a hold that never came to be because its HTTP worker was killed
    # between the cap gate and the inventory: it stays until its deadline (the cap errs
    # strict, never loose; see hold_within_cap).
    [reconcile] = [line for line in lines if line.startswith("reconcile=")]
    if reconcile not in ("reconcile=0", "reconcile=n/a (no reconcile_inventory)"):
        [kinds] = [line for line in lines if line.startswith("reconcile kinds: ")]
        assert set(re.findall(r"(\w+)=\d+", kinds)) == {"account_cap"}, transcript


@pytest.mark.timeout(170)
def test_short_chaos_run_keeps_every_invariant() -> None:
    code, lines = run_chaos("--short", "--seed", "11", "--drop-rate", "0.02", timeout=160)
    check(code, lines, min_faults=10)


@slow
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_full_chaos_run_keeps_every_invariant() -> None:
    code, lines = run_chaos("--seed", "12", "--drop-rate", "0.02", timeout=880)
    check(code, lines, min_faults=60)


def test_chaos_refuses_servers_it_does_not_own() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    done = subprocess.run(
        [sys.executable, "-m", "reservation.cli", "chaos", "--short"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "own throwaway servers" in done.stdout
