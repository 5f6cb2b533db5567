"""TtlCache: entries expire, concurrent misses share one load, failures are not kept."""

from __future__ import annotations

import asyncio

import pytest

from reservation.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self) -> int:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("postgres is down")
        return self.calls


async def test_concurrent_misses_share_one_load_and_the_value_lives_its_ttl() -> None:
    clock, load = Clock(), Loader()
    cache = TtlCache(1.0, clock=clock)
    waiting = [asyncio.ensure_future(cache.get_or_load("k", load)) for _ in range(20)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 20
    assert load.calls == 1
    clock.now += 0.99
    assert await cache.get_or_load("k", load) == 1
    clock.now += 0.02
    assert await cache.get_or_load("k", load) == 2  # expired: loaded again
    assert await cache.get_or_load("other", load) == 3  # keys are apart


async def test_a_failed_load_reaches_its_waiters_and_is_not_kept() -> None:
    load = Loader()
    cache = TtlCache(1.0, clock=Clock())
    load.fail = True
    load.gate.set()
    results = await asyncio.gather(
        *(cache.get_or_load("k", load) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert load.calls == 1
    load.fail = False
    assert await cache.get_or_load("k", load) == 2


async def test_one_waiter_leaving_does_not_cancel_the_load_for_the_others() -> None:
    load = Loader()
    cache = TtlCache(1.0, clock=Clock())
    leaving = asyncio.ensure_future(cache.get_or_load("k", load))
    staying = asyncio.ensure_future(cache.get_or_load("k", load))
    await asyncio.sleep(0)
    leaving.cancel()
    load.gate.set()
    assert await staying == 1
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_ttl_zero_loads_every_time() -> None:
    load = Loader()
    load.gate.set()
    cache = TtlCache(0, clock=Clock())
    assert [await cache.get_or_load("k", load) for _ in range(3)] == [1, 2, 3]
    cache.put("k", 9)
    assert cache.get("k") is None
