"""The service's hot-path scripts go through the pipelining client, not redis-py.

Regression (issue 7): the pool's connection class became a subclass
(``HiredisPackConnection``) and a check on the class *name* silently sent every script
call through redis-py's generic path, at about four times the CPU per hold.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from inventory.slot_engine import SlotEngine
from tests.api_fixture import Api
from tests.helpers import register


async def test_a_hold_over_http_uses_the_pipelining_connections(api: Api) -> None:
    if isinstance(api.services.redis, RedisCluster):
        pytest.skip("Redis Cluster: redis-py routes each call to its node by design")
    engine: SlotEngine = api.services.slots
    calls = engine.calls
    assert not any(c is not None for c in calls._conns)  # nothing sent through it yet
    [slot] = await api.publish("hosp-a", [api.slot(capacity=5)])
    citizen = await register(api.client)
    resp = await api.client.post(
        "/v1/bookings", json={"slot_id": slot["id"]}, headers=citizen["headers"]
    )
    assert resp.status == 201, await resp.text()
    assert any(c is not None and not c.closed for c in calls._conns)


async def test_calls_of_one_tick_leave_in_one_write(api: Api) -> None:
    if isinstance(api.services.redis, RedisCluster):
        pytest.skip("Redis Cluster: redis-py routes each call to its node by design")
    calls = api.services.slots.calls
    ping = api.services.slots._ping
    for _ in range(8):  # one at a time: every connection of the client gets opened
        await calls.call(ping, [], [])
    tasks = [asyncio.ensure_future(calls.call(ping, [], [])) for _ in range(20)]
    await asyncio.sleep(0)  # the twenty ran up to their send; the write is still due
    queued = sorted(len(c.outgoing) for c in calls._conns if c is not None and c.outgoing)
    assert queued == [20]  # one connection, one write for the tick
    assert [int(r) for r in await asyncio.gather(*tasks)] == [1] * 20


async def test_a_train_order_over_http_runs_its_seat_scripts_pipelined(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train holds, payments and cancels share the slots' pipelining client: a seat
    script sent through redis-py's own path instead fails this test."""
    from tests.trains import test_orders_api as orders

    if isinstance(api.services.redis, RedisCluster):
        pytest.skip("Redis Cluster: redis-py routes each call to its node by design")
    calls = api.services.seats.calls
    assert calls is api.services.slots.calls and calls._direct
    sent: list[str] = []
    real_call_many = calls.call_many

    async def counting(batch: list[Any]) -> list[Any]:
        sent.extend(script.sha for script, _keys, _args in batch)
        return await real_call_many(batch)

    async def refuse(batch: list[Any]) -> list[Any]:
        raise AssertionError("a seat script went through redis-py's per-call path")

    monkeypatch.setattr(calls, "call_many", counting)
    monkeypatch.setattr(calls, "_call_many_redis_py", refuse)
    _run, me, _provider, party = await orders.held_party(api, extra=1)
    await orders.call(api, "POST", f"/v1/orders/{party['id']}/cancel", me)
    seats = api.services.seats
    assert seats.freeing is not None  # a cancel frees its seats through the waitlist first
    assert seats._hold.sha in sent and seats.freeing._seat_free.sha in sent
