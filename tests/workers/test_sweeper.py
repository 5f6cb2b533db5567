"""The expiry sweeper on real Redis: holds past their deadline give their places back."""

from __future__ import annotations

import asyncio
from typing import Any

from inventory.outbox_event import event_fields
from inventory.slot_engine import shard_from_id
from reservation.workers.persister import PassResult, Persister
from reservation.workers.sweeper import Sweeper
from tests.api_fixture import Api
from tests.helpers import register

HOLD_SECONDS = 600  # Settings.slot_hold_seconds


def make_sweeper(api: Api) -> Sweeper:
    return Sweeper(services=api.services, shards=list(range(api.services.settings.shard_count)))


async def new_slot(api: Api, capacity: int) -> str:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=capacity)])
    return str(slot["id"])


async def hold(api: Api, slot_id: str) -> tuple[dict[str, Any], str]:
    citizen = await register(api.client)
    resp = await api.client.post(
        "/v1/bookings", json={"slot_id": slot_id}, headers=citizen["headers"]
    )
    assert resp.status == 201, await resp.text()
    return citizen, str((await resp.json())["id"])


async def available(api: Api, slot_id: str) -> int | None:
    return (await api.services.slots.available([slot_id]))[slot_id]


async def state(api: Api, hold_id: str) -> str:
    view = await api.services.slots.read_hold(hold_id)
    assert view is not None
    return view.state


async def outbox_types(api: Api, shard: int) -> list[tuple[str, str, str]]:
    entries = await api.services.redis.xrange(api.services.keys.outbox(shard))
    fields = [event_fields(f) for _, f in entries]
    return [(f["type"], f["hold"], f.get("reason", "")) for f in fields]


def expired_total(api: Api) -> float | None:
    return api.services.metrics.registry.get_sample_value("fairseat_holds_expired_total")


async def test_holds_past_their_deadline_expire_and_their_places_return(api: Api) -> None:
    slot_id = await new_slot(api, capacity=3)
    shard = shard_from_id(slot_id)
    start = api.clock.now_ms
    _, first = await hold(api, slot_id)
    api.clock.advance(5)
    _, second = await hold(api, slot_id)
    assert await available(api, slot_id) == 1
    sweeper = make_sweeper(api)

    api.clock.now_ms = start + HOLD_SECONDS * 1000 - 1  # one millisecond before the first
    assert await sweeper.run_once() == 0
    api.clock.now_ms = start + HOLD_SECONDS * 1000  # the first's deadline, exactly
    assert await sweeper.run_once() == 1
    assert (await state(api, first), await state(api, second)) == ("expired", "held")
    assert await available(api, slot_id) == 2
    api.clock.advance(5)
    assert await sweeper.run_once() == 1
    assert await state(api, second) == "expired"
    assert await available(api, slot_id) == 3
    assert expired_total(api) == 2.0

    assert await outbox_types(api, shard) == [
        ("held", first, ""),
        ("held", second, ""),
        ("expired", first, "deadline"),
        ("expired", second, "deadline"),
    ]
    # The persister records them as expired bookings.
    persister = Persister(
        services=api.services, consumer="p1", shards=list(range(api.services.settings.shard_count))
    )
    assert await persister.run_once() == PassResult(written=4)
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, state, end_reason FROM bookings ORDER BY held_at")
    assert [tuple(r) for r in rows] == [
        (first, "expired", "deadline"),
        (second, "expired", "deadline"),
    ]


async def test_a_freed_place_can_be_held_again(api: Api) -> None:
    slot_id = await new_slot(api, capacity=1)
    await hold(api, slot_id)
    citizen = await register(api.client)
    full = await api.client.post(
        "/v1/bookings", json={"slot_id": slot_id}, headers=citizen["headers"]
    )
    assert (await full.json())["code"] == "sold_out"
    api.clock.advance(HOLD_SECONDS)
    assert await make_sweeper(api).run_once() == 1
    again = await api.client.post(
        "/v1/bookings", json={"slot_id": slot_id}, headers=citizen["headers"]
    )
    assert again.status == 201, await again.text()
    assert await available(api, slot_id) == 0


async def test_a_confirmed_booking_is_never_expired(api: Api) -> None:
    slot_id = await new_slot(api, capacity=2)
    paid_citizen, paid = await hold(api, slot_id)
    _, unpaid = await hold(api, slot_id)
    resp = await api.client.post(f"/v1/bookings/{paid}/confirm", headers=paid_citizen["headers"])
    assert resp.status == 200, await resp.text()

    api.clock.advance(HOLD_SECONDS + 1)
    sweeper = make_sweeper(api)
    assert await sweeper.run_once() == 1
    api.clock.advance(86_400)
    assert await sweeper.run_once() == 0
    assert (await state(api, paid), await state(api, unpaid)) == ("confirmed", "expired")
    assert await available(api, slot_id) == 1


async def test_expiry_happens_once_however_often_and_by_however_many_it_runs(api: Api) -> None:
    slot_id = await new_slot(api, capacity=4)
    holds = [(await hold(api, slot_id))[1] for _ in range(3)]
    api.clock.advance(HOLD_SECONDS)
    # Three sweepers at once (e.g. after a rebalance), then one more pass.
    counts = await asyncio.gather(*(make_sweeper(api).run_once() for _ in range(3)))
    assert sum(counts) == 3
    assert await make_sweeper(api).run_once() == 0
    assert [await state(api, h) for h in holds] == ["expired"] * 3
    assert await available(api, slot_id) == 4  # never above capacity
    assert expired_total(api) == 3.0
    types = [t for t, _, _ in await outbox_types(api, shard_from_id(slot_id))]
    assert types == ["held"] * 3 + ["expired"] * 3


async def test_confirm_after_the_deadline_is_refused_even_before_the_sweeper_ran(api: Api) -> None:
    slot_id = await new_slot(api, capacity=1)
    citizen, late = await hold(api, slot_id)
    api.clock.advance(HOLD_SECONDS)  # deadline reached; no sweeper yet
    resp = await api.client.post(f"/v1/bookings/{late}/confirm", headers=citizen["headers"])
    assert resp.status == 409
    assert (await resp.json())["code"] == "hold_expired"
    assert await state(api, late) == "held"  # refused, nothing changed
    assert await available(api, slot_id) == 0

    assert await make_sweeper(api).run_once() == 1
    assert await available(api, slot_id) == 1
    again = await api.client.post(f"/v1/bookings/{late}/confirm", headers=citizen["headers"])
    assert again.status == 409
    assert (await again.json())["code"] == "hold_not_live"
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM bookings") == 0
