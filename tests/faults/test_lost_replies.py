"""Lost replies: Redis executes a request, the client never hears, the client retries.

The app's Redis traffic (the pipelining script client and redis-py alike) goes through
``FaultProxy``, which drops the reply of a random 20% of requests by closing the client's
connection after Redis answered. Clients retry 503s and broken connections with the same
Idempotency-Key. Exact counts afterwards: every place sold once, no hold twice, stock =
capacity - sold, every confirmed booking in Postgres once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from reservation.faults.proxy import FaultProxy
from reservation.runtime.embedded import RedisServer
from reservation.settings import Settings
from tests.api_fixture import Api
from tests.helpers import insert_citizens

SLOTS = 5
CAPACITY = 8
CITIZENS = 60  # 12 per slot for 8 places: 4 of each 12 must hear "sold out"


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", redis_server.port, seed=20261122) as p:
        yield p


@pytest.fixture
def settings(settings: Settings, proxy: FaultProxy) -> Settings:
    """The conftest settings, with the app's Redis behind the proxy."""
    # Rate limits off: this test retries one request many times on purpose (each retry
    # whose reply is lost looks like a new attempt to the limiter).
    return settings.replace(redis_url=proxy.url, hold_rate_per_account=0, hold_rate_per_person=0)


async def post_until_final(
    api: Api, path: str, headers: dict[str, str], body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], int]:
    """POST, retrying 503s (and only those) with the same headers; returns the final
    status, its body and how many 503s came first."""
    unavailable = 0
    for _attempt in range(200):
        resp = await api.client.post(path, json=body, headers=headers)
        payload: dict[str, Any] = await resp.json()
        if resp.status != 503:
            return resp.status, payload, unavailable
        assert "Retry-After" in resp.headers
        unavailable += 1  # noqa: SIM113 (counts 503s, not attempts)
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} still 503 after 200 attempts")


async def test_20_percent_lost_replies_sell_every_place_exactly_once(
    api: Api, proxy: FaultProxy, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    resources = [{"code": f"dr-{i}", "name": f"Dr {i}"} for i in range(SLOTS)]
    slots = await api.publish(
        "hosp-a", [api.slot(capacity=CAPACITY, code=f"dr-{i}") for i in range(SLOTS)], resources
    )
    people = await insert_citizens(api, CITIZENS, "lossy")
    proxy.set_mode("drop", drop_rate=0.2)
    rng = random.Random(7)
    order = list(range(CITIZENS))
    rng.shuffle(order)

    async def book(n: int) -> tuple[str, str | None, int]:
        account_id, auth = people[n]
        slot_id = slots[n % SLOTS]["id"]
        headers = {**auth, "Idempotency-Key": f"rush-{n}"}
        status, body, retries = await post_until_final(
            api, "/v1/bookings", headers, {"slot_id": slot_id}
        )
        if status == 409:
            assert body["code"] == "sold_out", body
            return account_id, None, retries
        assert status in (200, 201), body
        hold_id = str(body["id"])
        status, body, more = await post_until_final(api, f"/v1/bookings/{hold_id}/confirm", auth)
        assert status == 200, body
        assert body["state"] == "confirmed"
        return account_id, hold_id, retries + more

    outcomes = await asyncio.gather(*(book(n) for n in order))
    proxy.set_mode("pass")

    # The faults really happened, and the clients really had to retry.
    assert proxy.counters.replies_dropped >= 20, proxy.counters
    assert sum(r for _, _, r in outcomes) > 0

    sold = [h for _, h, _ in outcomes if h is not None]
    assert len(sold) == SLOTS * CAPACITY
    assert len(set(sold)) == len(sold)
    available = await api.services.slots.available([s["id"] for s in slots])
    assert available == {s["id"]: 0 for s in slots}

    # Redis: exactly the sold holds exist, all confirmed, each account at most one.
    holds: dict[str, dict[Any, Any]] = {}
    async for key in redis_client.scan_iter(match=f"{key_prefix}:*:hold:*", count=1000):
        holds[key.rsplit(":", 1)[1]] = await redis_client.hgetall(key)
    assert sorted(holds) == sorted(sold)
    assert {h["state"] for h in holds.values()} == {"confirmed"}
    assert len({h["account"] for h in holds.values()}) == len(sold)
    per_slot_count: dict[str, int] = {}
    for h in holds.values():
        per_slot_count[h["slot"]] = per_slot_count.get(h["slot"], 0) + 1
    assert per_slot_count == {s["id"]: CAPACITY for s in slots}

    # Postgres: every confirmed booking once, nothing else confirmed.
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, slot_id, account_id, state FROM bookings")
    assert sorted(r["id"] for r in rows) == sorted(sold)
    assert {r["state"] for r in rows} == {"confirmed"}
    assert len({r["account_id"] for r in rows}) == len(rows)


async def test_many_retries_of_one_hold_through_lost_replies_hold_once(
    api: Api, proxy: FaultProxy
) -> None:
    """A double-clicking citizen behind a lossy network: 30 concurrent copies of one
    request, each retried, name one hold and take one place."""
    [slot] = await api.publish("hosp-a", [api.slot(capacity=3)])
    [(_, auth)] = await insert_citizens(api, 1, "lossy")
    headers = {**auth, "Idempotency-Key": "double-click"}
    proxy.set_mode("drop", drop_rate=0.3)

    async def attempt() -> str:
        status, body, _ = await post_until_final(
            api, "/v1/bookings", headers, {"slot_id": slot["id"]}
        )
        assert status in (200, 201), body
        return str(body["id"])

    ids = await asyncio.gather(*(attempt() for _ in range(30)))
    proxy.set_mode("pass")
    assert len(set(ids)) == 1
    assert proxy.counters.replies_dropped > 0
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == 2


async def test_lost_reply_of_the_cap_gate_then_a_refusal_gives_the_cap_back(
    api: Api, proxy: FaultProxy, redis_client: aioredis.Redis
) -> None:
    """The reply of ``account_hold_reserve`` is lost, the client's retry answers "already
    counted", then the inventory refuses (sold out): the account's place under the cap
    must be given back, or a few such refusals lock the citizen out with 429 until the
    deadlines pass."""
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    [(_, first), (late_id, late)] = await insert_citizens(api, 2, "lossy")
    resp = await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=first)
    assert resp.status == 201, await resp.text()  # sold out now; slot metadata is cached
    proxy.drop_next(1)  # the next request on the wire: the late citizen's cap reserve
    status, body, _ = await post_until_final(
        api, "/v1/bookings", {**late, "Idempotency-Key": "late"}, {"slot_id": slot["id"]}
    )
    assert (status, body["code"]) == (409, "sold_out")
    assert proxy.counters.replies_dropped == 1
    assert await redis_client.zcard(api.services.keys.account_holds(late_id)) == 0
