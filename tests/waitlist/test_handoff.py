"""Handoff defence with the production-like delay (30-120 s): a cancelled place is not
bookable by another account at once; it goes back on sale only after its random delay
(FakeClock), an expired one at once; cancel -> rebook pairs of different people are
flagged, listed for operators and audited."""

from __future__ import annotations

import random
from typing import Any

import pytest

from reservation.settings import Settings
from tests.api_fixture import Api
from tests.helpers import register
from tests.waitlist.support import audit_kinds, fill, get, persist, post
from tests.waitlist.test_slot_waitlist import available, sold_out_slot, try_hold, wait_body


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(handoff_delay_min_ms=30_000, handoff_delay_max_ms=120_000)


async def cooling_ends(api: Api, slot_id: str) -> list[int]:
    wl = api.services.slots.freeing
    assert wl is not None
    shard = int(slot_id[1:].split("-")[0])
    return [p.until_ms for p in await wl.pieces(shard) if p.slot_id == slot_id]


async def test_a_cancelled_place_cools_for_a_random_delay_then_goes_back_on_sale(
    api: Api,
) -> None:
    slot, [(holder, hold)] = await sold_out_slot(api)
    other = await register(api.client)
    cancelled_at = api.clock.now_ms
    await post(api, f"/v1/bookings/{hold['id']}/cancel", holder)
    [ends] = await cooling_ends(api, slot["id"])
    assert cancelled_at + 30_000 <= ends <= cancelled_at + 120_000
    assert await try_hold(api, other, slot["id"]) == 409
    api.clock.advance(29)
    assert (await fill(api)).released == 0
    assert await try_hold(api, other, slot["id"]) == 409
    api.clock.now_ms = ends - 1
    assert (await fill(api)).released == 0
    api.clock.now_ms = ends
    assert (await fill(api)).released == 1
    assert await available(api, slot["id"]) == 1
    assert await try_hold(api, other, slot["id"]) == 201


async def test_the_delays_are_drawn_at_random(api: Api) -> None:
    slot, holders = await sold_out_slot(api, capacity=6)
    for who, hold in holders:
        await post(api, f"/v1/bookings/{hold['id']}/cancel", who)
    ends = await cooling_ends(api, slot["id"])
    assert len(ends) == 6
    assert len(set(ends)) > 1  # six equal draws from 90,001 values: never in practice


async def test_an_expired_hold_goes_back_on_sale_at_once_when_nobody_waits(api: Api) -> None:
    slot, [(_, hold)] = await sold_out_slot(api)
    api.clock.advance(api.services.settings.slot_hold_seconds + 1)
    shard = int(hold["id"][1:].split("-")[0])
    assert await api.services.slots.expire_due(shard, api.clock.now_ms) == 1
    assert await available(api, slot["id"]) == 1


async def test_a_waiting_order_gets_a_cancelled_place_without_the_delay(api: Api) -> None:
    slot, [(holder, hold)] = await sold_out_slot(api)
    waiter = await register(api.client)
    order = await post(api, "/v1/waitlist/slots", waiter, wait_body(api, slot), 201)
    await post(api, f"/v1/bookings/{hold['id']}/cancel", holder)
    await fill(api)
    assert (await get(api, f"/v1/waitlist/{order['id']}", waiter))["state"] == "fulfilled"
    # A waitlist allocation is the line working, not a handoff: never flagged.
    await persist(api)
    assert (await fill(api)).flagged == 0


async def test_cancel_rebook_pairs_between_different_people_are_flagged(api: Api) -> None:
    slot, [(x, x_hold)] = await sold_out_slot(api, capacity=1)
    y = await register(api.client)
    await post(api, f"/v1/bookings/{x_hold['id']}/cancel", x)
    [ends] = await cooling_ends(api, slot["id"])
    api.clock.now_ms = ends
    await fill(api)
    y_hold = await post(api, "/v1/bookings", y, {"slot_id": slot["id"]}, 201)
    await persist(api)
    report = await fill(api)
    assert report.flagged == 1
    assert (await fill(api)).flagged == 0  # stored once

    flags = (await get(api, "/v1/operator/handoff-flags", {"headers": api.operator}))["flags"]
    assert len(flags) == 1
    flag = flags[0]
    assert flag["kind"] == "slot" and flag["object"] == slot["id"]
    assert flag["cancelled"]["id"] == x_hold["id"]
    assert flag["cancelled"]["account_id"] == x["account_id"]
    assert flag["booked"] == {**flag["booked"], "id": y_hold["id"], "account_id": y["account_id"]}
    assert flag["gap_ms"] >= 30_000
    assert await audit_kinds(api, f"handoff:{slot['id']}") == ["cancellation"]
    await get(api, "/v1/operator/handoff-flags", y, status=403)


async def test_the_same_person_rebooking_is_not_flagged(api: Api) -> None:
    slot, [(x, x_hold)] = await sold_out_slot(api, capacity=1)
    await post(api, f"/v1/bookings/{x_hold['id']}/cancel", x)
    [ends] = await cooling_ends(api, slot["id"])
    api.clock.now_ms = ends
    await fill(api)
    await post(api, "/v1/bookings", x, {"slot_id": slot["id"]}, 201, "again")
    await persist(api)
    assert (await fill(api)).flagged == 0


async def test_exact_counts_across_cancel_refill_and_expiry_cycles(api: Api) -> None:
    """Random cancels, filings, expiries, filler passes and clock moves on one slot: after
    every step, open places + cooling places + live holds = capacity, exactly."""
    capacity = 3
    slot, holders = await sold_out_slot(api, capacity=capacity)
    shard = int(slot["id"][1:].split("-")[0])
    wl = api.services.slots.freeing
    assert wl is not None
    rng = random.Random(11)
    live = [(who, hold["id"]) for who, hold in holders]
    waiting: list[tuple[dict[str, Any], str]] = []
    served = 0
    for step in range(40):
        action = rng.choice(["cancel", "file", "fill", "fill", "wait", "expire", "book"])
        if action == "cancel" and live:
            who, hold_id = live.pop(rng.randrange(len(live)))
            await post(api, f"/v1/bookings/{hold_id}/cancel", who)
        elif action == "file" and await available(api, slot["id"]) == 0:
            who = await register(api.client)
            order = await post(api, "/v1/waitlist/slots", who, wait_body(api, slot), 201)
            waiting.append((who, order["id"]))
        elif action == "wait":
            api.clock.advance(rng.choice([10, 40, 130]))
        elif action == "expire":
            api.clock.advance(api.services.settings.slot_hold_seconds + 1)
            await api.services.slots.expire_due(shard, api.clock.now_ms)
        elif action == "book":
            who = await register(api.client)
            resp = await api.client.post(
                "/v1/bookings", json={"slot_id": slot["id"]}, headers=who["headers"]
            )
            if resp.status == 201:
                live.append((who, (await resp.json())["id"]))
        else:
            await fill(api)
            for who, order_id in list(waiting):
                mine = await get(api, f"/v1/waitlist/{order_id}", who)
                if mine["state"] != "waiting":
                    waiting.remove((who, order_id))
                if mine["state"] == "fulfilled":
                    live.append((who, mine["hold_id"]))
                    served += 1
        holds = [await api.services.slots.read_hold(h) for _, h in live]
        live = [(w, h) for (w, h), v in zip(live, holds, strict=True) if v and v.state == "held"]
        raw = await api.services.redis.hmget(
            api.services.keys.slot(shard, slot["id"]), ["available", "cooling"]
        )
        open_places, cooling = int(raw[0]), int(raw[1] or 0)
        pieces = [p for p in await wl.pieces(shard) if p.slot_id == slot["id"]]
        assert cooling == len(pieces), step
        assert open_places + cooling + len(live) == capacity, (step, action)
    assert served >= 2  # the cycle did exercise the waitlist
