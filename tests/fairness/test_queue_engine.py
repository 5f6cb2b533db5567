"""The waiting room's Lua scripts on real Redis (and the cluster with
FAIRSEAT_TEST_REDIS=cluster): the pacing bound under concurrent polls and stale stock
readings, the window closing atomically, late joiners in arrival order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from inventory.keys import Keys
from inventory.queue_engine import QueueEngine
from inventory.script_client import ScriptClient

NOW = int(time.time() * 1000)  # keys expire on Redis's own clock: stay near it
SALE = "sale-engine"


@pytest.fixture
async def queue(redis_client: Any, key_prefix: str) -> AsyncIterator[QueueEngine]:
    calls = ScriptClient(redis_client)
    engine = QueueEngine(redis_client, Keys(prefix=key_prefix), calls)
    await engine.load()
    yield engine
    await calls.aclose()


async def opened(queue: QueueEngine, *, stock: int, k: int = 1, ttl: int = 60_000) -> None:
    assert await queue.open(
        SALE,
        now_ms=NOW,
        window_ends_ms=NOW + 10_000,
        release_ms=NOW,
        ends_ms=NOW + 3_600_000,
        admit_factor=k,
        admission_ttl_ms=ttl,
        stock=stock,
        retain_until_ms=NOW + 7_200_000,
    )


async def joined_and_drawn(queue: QueueEngine, n: int) -> list[str]:
    accounts = [f"a{i}" for i in range(n)]
    for i, account in enumerate(accounts):
        await queue.join(SALE, account_id=account, join_id=f"j{i}", now_ms=NOW + i)
    window = await queue.close_window(SALE, now_ms=NOW + 10_000)
    assert window is not None and len(window) == n
    await queue.place(SALE, order=accounts, now_ms=NOW + 10_000)
    return accounts


async def test_concurrent_polls_never_admit_beyond_k_times_the_stock(queue: QueueEngine) -> None:
    await opened(queue, stock=7, k=2)
    accounts = await joined_and_drawn(queue, 60)
    states = await asyncio.gather(
        *(
            queue.status(
                SALE,
                account_id=a,
                now_ms=NOW + 11_000,
                measured_remaining=None,
                nonce_candidate=f"n{a}",
            )
            for a in accounts
        )
    )
    admitted = [s for s in states if s is not None and s.state == "admitted"]
    assert len(admitted) == 14
    assert max(s.live_admissions for s in states if s is not None) == 14


async def test_a_stale_stock_reading_admits_nobody_for_places_just_taken(
    queue: QueueEngine,
) -> None:
    await opened(queue, stock=3)
    accounts = await joined_and_drawn(queue, 10)
    first = await queue.status(
        SALE,
        account_id="a0",
        now_ms=NOW + 11_000,
        measured_remaining=3,
        nonce_candidate="x",
        measured_at_ms=NOW + 11_000,
    )
    assert first is not None and first.admitted_upto == 3
    # a0 holds at +12 s: 2 places left, 2 admissions unused.
    await queue.finish(SALE, account_id="a0", outcome="held", places=1, now_ms=NOW + 12_000)
    # Another process still has the reading of +11 s (3 places): it must not count.
    stale = await queue.status(
        SALE,
        account_id=accounts[5],
        now_ms=NOW + 12_100,
        measured_remaining=3,
        nonce_candidate="y",
        measured_at_ms=NOW + 11_000,
    )
    assert stale is not None and stale.remaining == 2 and stale.admitted_upto == 3
    # A fresh reading does: a place came back (a hold expired), one more admission.
    fresh = await queue.status(
        SALE,
        account_id=accounts[5],
        now_ms=NOW + 12_200,
        measured_remaining=3,
        nonce_candidate="y",
        measured_at_ms=NOW + 12_200,
    )
    assert fresh is not None and fresh.remaining == 3 and fresh.admitted_upto == 4


async def test_the_window_closes_once_and_late_joiners_queue_in_arrival_order(
    queue: QueueEngine,
) -> None:
    await opened(queue, stock=5)
    early = await queue.join(SALE, account_id="w1", join_id="jw1", now_ms=NOW + 1)
    assert early.late_rank == 0 and early.position == 0
    assert await queue.close_window(SALE, now_ms=NOW + 9_999) is None  # not yet
    window = await queue.close_window(SALE, now_ms=NOW + 10_000)
    assert window is not None and [w.account_id for w in window] == ["w1"]
    # Closed: even a caller whose clock still reads inside the window is late now.
    skewed = await queue.join(SALE, account_id="l1", join_id="jl1", now_ms=NOW + 9_000)
    assert skewed.late_rank == 1
    assert await queue.close_window(SALE, now_ms=NOW + 10_500) == window
    await queue.place(SALE, order=["w1"], now_ms=NOW + 10_500)
    after = await queue.join(SALE, account_id="l2", join_id="jl2", now_ms=NOW + 11_000)
    assert (after.late_rank, after.position) == (2, 3)
    again = await queue.join(SALE, account_id="l1", join_id="jl1", now_ms=NOW + 12_000)
    assert (again.new, again.position) == (False, 2)
