"""The per-process epoch cache (no servers)."""

from __future__ import annotations

import pytest

from inventory.epoch import CLOSED, NEVER_BUILT, EpochGuard, EpochState


class Source:
    def __init__(self) -> None:
        self.state = EpochState(3, True)
        self.loads = 0
        self.fail = False

    async def load(self) -> EpochState:
        self.loads += 1
        if self.fail:
            raise ConnectionError("postgres down")
        return self.state


async def test_caches_for_the_refresh_period_and_reloads_after_it() -> None:
    source, now = Source(), [0.0]
    guard = EpochGuard(source.load, refresh_s=1.0, clock=lambda: now[0])
    assert guard.state == NEVER_BUILT and NEVER_BUILT.expected == CLOSED
    assert await guard.expected() == "3"
    source.state = EpochState(4, False, "rebuilding")
    now[0] = 0.5
    assert await guard.expected() == "3" and source.loads == 1
    now[0] = 1.0
    assert await guard.expected() == CLOSED and source.loads == 2
    source.state = EpochState(4, True)
    guard.invalidate()
    assert await guard.expected() == "4"


async def test_a_failed_reload_keeps_the_last_epoch() -> None:
    source, now = Source(), [0.0]
    guard = EpochGuard(source.load, refresh_s=1.0, clock=lambda: now[0])
    assert await guard.expected() == "3"
    source.fail, now[0] = True, 2.0
    assert await guard.expected() == "3"  # the markers in Redis still close sales
    with pytest.raises(ConnectionError):
        await guard.refresh()
