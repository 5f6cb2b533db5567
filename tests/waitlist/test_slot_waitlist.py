"""The slot waitlist over HTTP on real Redis and Postgres: freed places go to waiting orders
in line before open sale, positions, deadlines, withdrawal, the handoff delay and flags."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from reservation.domain.clock import CHINA
from tests.api_fixture import Api
from tests.helpers import register
from tests.waitlist.support import (
    audit_kinds,
    deadline,
    fill,
    get,
    notifications,
    post,
)


async def sold_out_slot(api: Api, capacity: int = 1) -> tuple[dict[str, Any], list[Any]]:
    """A released slot and the citizens holding all its places (with their holds)."""
    [slot] = await api.publish("hosp-a", [api.slot(capacity=capacity)])
    slot = await with_resource(api, slot)
    holders = []
    for i in range(capacity):
        who = await register(api.client)
        hold = await post(api, "/v1/bookings", who, {"slot_id": slot["id"]}, 201, f"h{i}")
        holders.append((who, hold))
    return slot, holders


async def with_resource(api: Api, slot: dict[str, Any]) -> dict[str, Any]:
    async with api.services.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT resource_id, day FROM slots WHERE id = $1", slot["id"])
    return {**slot, "resource_id": row["resource_id"], "day": row["day"].isoformat()}


def wait_body(api: Api, slot: dict[str, Any], seconds: float = 3600) -> dict[str, Any]:
    return {
        "resource_ids": [slot["resource_id"]],
        "first_day": slot["day"],
        "last_day": slot["day"],
        "deadline": deadline(api, seconds),
    }


def noon_today(api: Api) -> int:
    day = api.clock.now.astimezone(CHINA).date()
    return int(dt.datetime.combine(day, dt.time(12), CHINA).timestamp() * 1000)


async def try_hold(api: Api, who: dict[str, Any], slot_id: str) -> int:
    resp = await api.client.post("/v1/bookings", json={"slot_id": slot_id}, headers=who["headers"])
    return resp.status


async def available(api: Api, slot_id: str) -> int | None:
    return (await api.services.slots.available([slot_id]))[slot_id]


async def test_freed_place_goes_to_the_waitlist_never_to_a_racing_open_sale_hold(
    api: Api,
) -> None:
    slot, [(holder, hold)] = await sold_out_slot(api)
    waiter = await register(api.client)
    order = await post(api, "/v1/waitlist/slots", waiter, wait_body(api, slot), 201, "w1")
    assert order["state"] == "waiting"
    assert [c["position"] for c in order["choices"]] == [1]

    # The cancellation races 30 open-sale holds by others: none may get the place.
    racers = [await register(api.client) for _ in range(30)]
    results = await asyncio.gather(
        post(api, f"/v1/bookings/{hold['id']}/cancel", holder),
        *(try_hold(api, r, slot["id"]) for r in racers),
    )
    assert all(status == 409 for status in results[1:])
    assert await available(api, slot["id"]) == 0  # cooling, not on open sale
    # Once the cancel is done, an open-sale hold still cannot take it.
    assert [await try_hold(api, r, slot["id"]) for r in racers[:3]] == [409, 409, 409]

    report = await fill(api)
    assert report.fulfilled == 1
    mine = await get(api, f"/v1/waitlist/{order['id']}", waiter)
    assert mine["state"] == "fulfilled"
    assert mine["choices"][0]["position"] is None
    got = await get(api, f"/v1/bookings/{mine['hold_id']}", waiter)
    assert got["state"] == "held" and got["slot_id"] == slot["id"]
    # A normal hold: the citizen pays it as any other.
    paid = await post(api, f"/v1/bookings/{mine['hold_id']}/confirm", waiter)
    assert paid["state"] == "confirmed"
    assert await available(api, slot["id"]) == 0
    assert ("waitlist_fulfilled", order["id"]) in await notifications(api, waiter["account_id"])
    assert await audit_kinds(api, f"waitlist:{order['id']}") == ["allocation"]


async def test_orders_are_served_in_filing_order_and_positions_move_up(api: Api) -> None:
    slot, holders = await sold_out_slot(api, capacity=2)
    waiters = [await register(api.client) for _ in range(3)]
    orders = [
        await post(api, "/v1/waitlist/slots", w, wait_body(api, slot), 201, f"w{i}")
        for i, w in enumerate(waiters)
    ]
    positions = [
        (await get(api, f"/v1/waitlist/{o['id']}", w))["choices"][0]["position"]
        for o, w in zip(orders, waiters, strict=True)
    ]
    assert positions == [1, 2, 3]

    (first_holder, first_hold), (second_holder, second_hold) = holders
    await post(api, f"/v1/bookings/{first_hold['id']}/cancel", first_holder)
    await fill(api)
    states = [
        (await get(api, f"/v1/waitlist/{o['id']}", w))["state"]
        for o, w in zip(orders, waiters, strict=True)
    ]
    assert states == ["fulfilled", "waiting", "waiting"]
    assert (await get(api, f"/v1/waitlist/{orders[2]['id']}", waiters[2]))["choices"][0][
        "position"
    ] == 2

    # The first in line withdraws: the third moves up and gets the next place.
    withdrawn = await post(api, f"/v1/waitlist/{orders[1]['id']}/cancel", waiters[1])
    assert withdrawn["state"] == "cancelled"
    again = await post(api, f"/v1/waitlist/{orders[1]['id']}/cancel", waiters[1])
    assert again["replay"] is True
    await post(api, f"/v1/bookings/{second_hold['id']}/cancel", second_holder)
    await fill(api)
    last = await get(api, f"/v1/waitlist/{orders[2]['id']}", waiters[2])
    assert last["state"] == "fulfilled"
    # Fulfilled orders cannot be withdrawn (cancel the hold instead); others' are 404.
    await post(api, f"/v1/waitlist/{orders[0]['id']}/cancel", waiters[0], status=409)
    await post(api, f"/v1/waitlist/{orders[0]['id']}/cancel", waiters[2], status=404)
    await get(api, f"/v1/waitlist/{orders[0]['id']}", waiters[1], status=404)
    mine = await get(api, "/v1/waitlist", waiters[0])
    assert [o["id"] for o in mine["orders"]] == [orders[0]["id"]]


async def test_filing_needs_a_sold_out_released_choice_and_is_idempotent(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    slot = await with_resource(api, slot)
    who = await register(api.client)
    body = wait_body(api, slot)
    refused = await post(api, "/v1/waitlist/slots", who, body, 409)
    assert refused["code"] == "not_sold_out"
    [later] = await api.publish("hosp-b", [api.slot(capacity=1, release_in_s=3600)])
    later = await with_resource(api, later)
    refused = await post(api, "/v1/waitlist/slots", who, wait_body(api, later), 409)
    assert refused["code"] == "not_sold_out"  # not released: book at the opening instead

    await post(api, "/v1/bookings", who, {"slot_id": slot["id"]}, 201)
    other = await register(api.client)
    first = await post(api, "/v1/waitlist/slots", other, body, 201, "same")
    second = await post(api, "/v1/waitlist/slots", other, body, 201, "same")
    assert first["id"] == second["id"]
    bad = await post(api, "/v1/waitlist/slots", other, {**body, "deadline": deadline(api, -5)}, 422)
    assert bad["code"] == "bad_waitlist_order"
    await post(api, "/v1/waitlist/slots", other, {**body, "resource_ids": ["nope"]}, 404)
    await post(api, "/v1/waitlist/slots", other, {**body, "deadline": "tomorrow"}, 422)
    # At most six waiting orders per account.
    for i in range(5):
        await post(api, "/v1/waitlist/slots", other, body, 201, f"more{i}")
    capped = await post(api, "/v1/waitlist/slots", other, body, 409, "seventh")
    assert capped["code"] == "waitlist_cap"


async def test_an_order_ends_at_its_deadline_and_freed_places_then_go_on_sale(
    api: Api,
) -> None:
    slot, [(holder, hold)] = await sold_out_slot(api)
    waiter = await register(api.client)
    order = await post(api, "/v1/waitlist/slots", waiter, wait_body(api, slot, 60), 201)
    api.clock.advance(61)
    report = await fill(api)
    assert report.ended == 1
    ended = await get(api, f"/v1/waitlist/{order['id']}", waiter)
    assert ended["state"] == "ended" and ended["end_reason"] == "deadline"
    assert ("waitlist_ended", order["id"]) in await notifications(api, waiter["account_id"])
    # Nobody waits now: with no handoff delay configured, the place is back at once.
    await post(api, f"/v1/bookings/{hold['id']}/cancel", holder)
    assert await available(api, slot["id"]) == 1


async def test_newly_released_stock_goes_to_the_waitlist_first(api: Api) -> None:
    api.clock.now_ms = noon_today(api)
    slot, _ = await sold_out_slot(api)
    waiter = await register(api.client)
    other = await register(api.client)
    order = await post(api, "/v1/waitlist/slots", waiter, wait_body(api, slot), 201)
    # Another slot of the same doctor and day is published while the order waits: its
    # place is held back for the waitlist, never on open sale, even for an instant.
    [more] = await api.publish("hosp-a", [api.slot(capacity=1, hours_ahead=24.5)])
    more = await with_resource(api, more)
    assert more["day"] == slot["day"]
    assert await available(api, more["id"]) == 0
    assert await try_hold(api, other, more["id"]) == 409
    await fill(api)
    mine = await get(api, f"/v1/waitlist/{order['id']}", waiter)
    assert mine["state"] == "fulfilled"
    assert (await get(api, f"/v1/bookings/{mine['hold_id']}", waiter))["slot_id"] == more["id"]
    assert await available(api, more["id"]) == 0


async def test_new_stock_with_a_release_time_waits_for_it_even_for_the_waitlist(
    api: Api,
) -> None:
    api.clock.now_ms = noon_today(api)
    slot, _ = await sold_out_slot(api)
    waiter = await register(api.client)
    order = await post(api, "/v1/waitlist/slots", waiter, wait_body(api, slot), 201)
    [later] = await api.publish("hosp-a", [api.slot(capacity=1, hours_ahead=25, release_in_s=600)])
    later = await with_resource(api, later)
    assert later["day"] == slot["day"]
    await fill(api)
    assert (await get(api, f"/v1/waitlist/{order['id']}", waiter))["state"] == "waiting"
    api.clock.advance(600)
    await fill(api)
    mine = await get(api, f"/v1/waitlist/{order['id']}", waiter)
    assert mine["state"] == "fulfilled"
    assert (await get(api, f"/v1/bookings/{mine['hold_id']}", waiter))["slot_id"] == later["id"]
