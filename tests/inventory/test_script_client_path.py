"""The service's hot-path scripts go through the pipelining client, not redis-py.

Regression (issue 7): the pool's connection class became a subclass
(``HiredisPackConnection``) and a check on the class *name* silently sent every script
call through redis-py's generic path, at about four times the CPU per hold.
"""

from __future__ import annotations

import asyncio

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
