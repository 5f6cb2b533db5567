"""GCRA rate limits in Lua: exact counts and retry times (the clock is ``now_ms``), the same
answers as a pure-Python reference, and exactly ``burst`` winners out of 100 concurrent
calls, on one Redis and on the 3-master cluster."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.fairness_engine import Decision, Limit, RateLimiter
from inventory.fairness_keys import SCOPE_ACCOUNT, SCOPE_ADDRESS, SCOPE_PERSON, FairnessKeys
from inventory.keys import Keys
from inventory.script_client import ScriptClient

NOW = 1_800_000_000_000
_runs = itertools.count()


class ReferenceGcra:
    """The rule, spelled out: TAT per subject; allowed iff TAT' - B*T <= now."""

    def __init__(self) -> None:
        self.tat: dict[str, int] = {}

    def check(self, subject: str, now: int, limit: Limit) -> Decision:
        tat = max(self.tat.get(subject, 0), now)
        new_tat = tat + limit.interval_ms
        allow_at = new_tat - limit.burst * limit.interval_ms
        if allow_at > now:
            return Decision(False, allow_at - now, 0)
        self.tat[subject] = new_tat
        return Decision(True, 0, (now - allow_at) // limit.interval_ms)


async def _limiter(client: Any, prefix: str) -> tuple[RateLimiter, ScriptClient]:
    calls = ScriptClient(client)
    limiter = RateLimiter(client, Keys(prefix=prefix), calls)
    await limiter.load()  # as at start-up (see RateLimiter.load)
    return limiter, calls


@pytest.fixture
async def limiter(redis_client: Any, key_prefix: str) -> AsyncIterator[RateLimiter]:
    limiter, calls = await _limiter(redis_client, key_prefix)
    yield limiter
    await calls.aclose()


async def test_burst_then_one_per_interval(limiter: RateLimiter, redis_client: Any) -> None:
    limit = Limit(interval_ms=1_000, burst=3)
    got = [await limiter.check(SCOPE_ACCOUNT, "a1", now_ms=NOW, limit=limit) for _ in range(4)]
    assert got == [
        Decision(True, 0, 2),
        Decision(True, 0, 1),
        Decision(True, 0, 0),
        Decision(False, 1_000, 0),
    ]
    # Refusals are not counted: the retry time stays put however often one knocks.
    assert await limiter.check(SCOPE_ACCOUNT, "a1", now_ms=NOW + 999, limit=limit) == Decision(
        False, 1, 0
    )
    assert await limiter.check(SCOPE_ACCOUNT, "a1", now_ms=NOW + 1_000, limit=limit) == Decision(
        True, 0, 0
    )
    assert await limiter.check(SCOPE_ACCOUNT, "a1", now_ms=NOW + 1_000, limit=limit) == Decision(
        False, 1_000, 0
    )
    # Other subjects and scopes have budgets of their own.
    assert (await limiter.check(SCOPE_ACCOUNT, "a2", now_ms=NOW, limit=limit)).allowed
    assert (await limiter.check(SCOPE_ADDRESS, "a1", now_ms=NOW, limit=limit)).allowed
    # The key lives until the budget is full again (TAT = NOW + 4000 at NOW + 1000), plus
    # a second of slack for clocks.
    ttl = await redis_client.pttl(limiter.keys.rate_limit(SCOPE_ACCOUNT, "a1"))
    assert 3_000 < ttl <= 4_000
    # Idle long enough, the whole burst is back.
    back = await limiter.check(SCOPE_ACCOUNT, "a1", now_ms=NOW + 4_000, limit=limit)
    assert back == Decision(True, 0, 2)


async def test_several_scopes_in_one_round_trip(limiter: RateLimiter) -> None:
    tight, loose = Limit(60_000, 1), Limit(1_000, 10)
    checks = [
        (SCOPE_ACCOUNT, "a1", loose),
        (SCOPE_PERSON, "hmac-p1", tight),
        (SCOPE_ADDRESS, "10.0.0.1", loose),
    ]
    first = await limiter.check_all(checks, now_ms=NOW)
    assert [d.allowed for d in first] == [True, True, True]
    second = await limiter.check_all(checks, now_ms=NOW)
    assert [d.allowed for d in second] == [True, False, True]
    assert second[1].retry_after_ms == 60_000


def test_limit_parameters() -> None:
    assert Limit.per_second(3, burst=2) == Limit(334, 2)  # rounded up: never looser
    assert Limit.per_second(0.5, burst=1) == Limit(2_000, 1)
    with pytest.raises(ValueError):
        Limit(0, 1)
    with pytest.raises(ValueError):
        Limit(1, 0)
    keys = FairnessKeys(Keys(prefix="fs"))
    # The account scope lands in the account's own shard, next to its hold cap.
    assert (
        keys.rate_limit("acct", "a1").split(":rl:")[0]
        == Keys().account_holds("a1").split(":acctholds:")[0]
    )
    with pytest.raises(ValueError):
        keys.rate_limit("a:b", "x")


steps = st.lists(
    st.tuples(st.sampled_from(["s1", "s2"]), st.integers(0, 2_500)), min_size=1, max_size=30
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    interval=st.integers(1, 1_000),
    burst=st.integers(1, 5),
    steps=steps,
)
async def test_lua_matches_the_reference(
    limiter: RateLimiter, interval: int, burst: int, steps: list[tuple[str, int]]
) -> None:
    run = next(_runs)
    limit = Limit(interval, burst)
    model = ReferenceGcra()
    now = NOW
    for subject, advance in steps:
        now += advance
        name = f"{run}-{subject}"  # fresh subjects per example
        assert await limiter.check(SCOPE_ACCOUNT, name, now_ms=now, limit=limit) == model.check(
            name, now, limit
        )


async def _hundred_at_five(limiter: RateLimiter, subject: str) -> None:
    limit = Limit(interval_ms=60_000, burst=5)
    decisions = await asyncio.gather(
        *(limiter.check(SCOPE_ADDRESS, subject, now_ms=NOW, limit=limit) for _ in range(100))
    )
    assert sum(d.allowed for d in decisions) == 5
    refused = [d for d in decisions if not d.allowed]
    assert {d.retry_after_ms for d in refused} == {60_000}


async def test_hundred_concurrent_calls_at_a_limit_of_five(limiter: RateLimiter) -> None:
    await _hundred_at_five(limiter, "192.0.2.1")


@pytest.mark.cluster
async def test_on_the_cluster(redis_cluster_client: Any, key_prefix: str) -> None:
    limiter, calls = await _limiter(redis_cluster_client, key_prefix)
    try:
        # Subjects in many shards, so on all three masters.
        for i in range(12):
            await _hundred_at_five(limiter, f"198.51.100.{i}")
        checks = [(SCOPE_ACCOUNT, f"a{i}", Limit(1_000, 1)) for i in range(6)]
        assert [d.allowed for d in await limiter.check_all(checks, now_ms=NOW)] == [True] * 6
        assert [d.allowed for d in await limiter.check_all(checks, now_ms=NOW)] == [False] * 6
    finally:
        await calls.aclose()
