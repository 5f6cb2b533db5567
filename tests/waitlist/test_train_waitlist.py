"""The train waitlist over HTTP on real Redis and Postgres: freed seats go to waiting orders
before open sale (whole parties, sub-trips inside freed segments), alternatives, refunds,
and exact seat counts across cancel / refill cycles."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

import pytest

from reservation.settings import Settings
from tests.api_fixture import Api
from tests.trains.test_orders_api import call, citizen, left, order_body, setup
from tests.waitlist.support import audit_kinds, fill, notifications


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(train_cache_ms=0)


def wait_body(
    api: Api, day: dt.date, choices: list[tuple[str, str]], pax: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "from": "VNP",
        "to": "AOH",
        "date": day.isoformat(),
        "choices": [{"run_id": r, "seat_class": c} for r, c in choices],
        "passenger_ids": pax,
        "deadline": (api.clock.now + dt.timedelta(hours=6)).isoformat(),
        **extra,
    }


async def sell_out_first(api: Api, run: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every first-class seat of ``run`` (8) held by two citizens: 5 + 3 passengers."""
    out = []
    for n in (5, 3):
        who = await citizen(api, extra=n - 1)
        held = await call(
            api, "POST", "/v1/orders", who, order_body(run, who["pax"][:n], seat_class="first"), 201
        )
        out.append((who, held))
    assert await left(api, run, "first") == 0
    return out


async def try_hold(api: Api, who: dict[str, Any], run: str, **extra: Any) -> int:
    body = order_body(run, who["pax"][:1], seat_class="first", **extra)
    resp = await api.client.post("/v1/orders", json=body, headers=who["headers"])
    return resp.status


async def test_freed_seats_go_to_the_waiting_party_before_a_racing_open_sale(api: Api) -> None:
    day = await setup(api)
    g1, g3 = f"G1-{day:%Y%m%d}", f"G3-{day:%Y%m%d}"
    [_, (three, order3)] = await sell_out_first(api, g1)
    await sell_out_first(api, g3)
    waiter = await citizen(api, extra=1)
    body = wait_body(api, day, [(g1, "first"), (g3, "first")], waiter["pax"])
    order = await call(api, "POST", "/v1/waitlist/trains", waiter, body, 201, "w1")
    assert [c["position"] for c in order["choices"]] == [1, 1]

    racers = [await citizen(api) for _ in range(10)]
    results = await asyncio.gather(
        call(api, "POST", f"/v1/orders/{order3['id']}/cancel", three),
        *(try_hold(api, r, g1) for r in racers),
    )
    assert all(status == 409 for status in results[1:])
    assert await left(api, g1, "first") == 0
    assert [await try_hold(api, r, g1) for r in racers[:2]] == [409, 409]

    report = await fill(api)
    assert report.fulfilled == 1
    mine = await call(api, "GET", f"/v1/waitlist/{order['id']}", waiter)
    assert mine["state"] == "fulfilled" and mine["fulfilled_rank"] == 0
    held = await call(api, "GET", f"/v1/orders/{mine['hold_id']}", waiter)
    assert held["state"] == "held" and held["run_id"] == g1
    assert len(held["tickets"]) == 2
    # The third freed seat: nobody else waits, so it went back on sale in the same pass.
    assert report.released == 1
    assert await left(api, g1, "first") == 1
    paid = await call(api, "POST", f"/v1/orders/{mine['hold_id']}/pay", waiter)
    assert paid["state"] == "confirmed"
    assert ("waitlist_fulfilled", order["id"]) in await notifications(api, waiter["account_id"])
    assert await audit_kinds(api, f"waitlist:{order['id']}") == ["allocation"]
    assert await api.services.seats.audit(g1, "first") == []


async def test_filing_rules_real_name_and_sold_out(api: Api) -> None:
    day = await setup(api)
    g1 = f"G1-{day:%Y%m%d}"
    who = await citizen(api, extra=1)
    refused = await call(
        api,
        "POST",
        "/v1/waitlist/trains",
        who,
        wait_body(api, day, [(g1, "first")], who["pax"]),
        409,
    )
    assert refused["code"] == "not_sold_out"
    await sell_out_first(api, g1)
    for pax, code in (
        (["nobody"], "unknown_passenger"),
        ([who["pax"][0]] * 2, "duplicate_passenger"),
        ([], "party_size"),
    ):
        body = wait_body(api, day, [(g1, "first")], pax)
        assert (await call(api, "POST", "/v1/waitlist/trains", who, body, 422))["code"] == code
    other_day = wait_body(api, day + dt.timedelta(days=1), [(g1, "first")], who["pax"])
    assert (await call(api, "POST", "/v1/waitlist/trains", who, other_day, 422))["code"] == (
        "bad_waitlist_order"
    )
    twice = wait_body(api, day, [(g1, "first"), (g1, "first")], who["pax"])
    await call(api, "POST", "/v1/waitlist/trains", who, twice, 422)
    # A passenger who already travels at that time cannot wait for it either.
    second = await call(api, "POST", "/v1/orders", who, order_body(g1, who["pax"][:1]), 201)
    assert second["state"] == "held"
    busy = wait_body(api, day, [(g1, "first")], who["pax"])
    assert (await call(api, "POST", "/v1/waitlist/trains", who, busy, 409))["code"] == (
        "overlapping_trip"
    )


async def test_a_sub_trip_is_served_from_a_longer_freed_seat_and_the_rest_returns(
    api: Api,
) -> None:
    day = await setup(api)
    g1 = f"G1-{day:%Y%m%d}"
    [(five, order5), _] = await sell_out_first(api, g1)
    waiter = await citizen(api)
    body = {**wait_body(api, day, [(g1, "first")], waiter["pax"]), "to": "TIP"}
    order = await call(api, "POST", "/v1/waitlist/trains", waiter, body, 201)
    await call(api, "POST", f"/v1/orders/{order5['id']}/cancel", five)
    report = await fill(api)
    assert report.fulfilled == 1
    mine = await call(api, "GET", f"/v1/waitlist/{order['id']}", waiter)
    held = await call(api, "GET", f"/v1/orders/{mine['hold_id']}", waiter)
    assert [(t["from"], t["to"]) for t in held["tickets"]] == [("VNP", "TIP")]
    # Four whole seats and the TIP -> AOH rest of the fifth are back on sale.
    remaining = await api.services.seats.remaining(g1, "first")
    assert remaining[0, 3] == 4
    assert remaining[1, 3] == 5
    assert await api.services.seats.audit(g1, "first") == []


async def test_exact_counts_across_cancel_and_refill_cycles(api: Api) -> None:
    """Random cancels, waitlist filings and filler passes on one run and class: after every
    step, each seat-segment is sold at most once and the seats sold equal the live holds'
    seats plus the pieces in cooling; 余票 never exceeds what is really free."""
    day = await setup(api)
    g1 = f"G1-{day:%Y%m%d}"
    rng = random.Random(5)
    live: list[tuple[dict[str, Any], str]] = []
    for who, held in await sell_out_first(api, g1):
        live.append((who, held["id"]))
    waiting: list[tuple[dict[str, Any], str]] = []
    seats = api.services.seats
    wl = seats.freeing
    assert wl is not None
    for step in range(14):
        action = rng.choice(["cancel", "file", "fill", "fill"])
        if action == "cancel" and live:
            who, hold_id = live.pop(rng.randrange(len(live)))
            await call(api, "POST", f"/v1/orders/{hold_id}/cancel", who)
        elif action == "file" and await left(api, g1, "first") == 0:
            who = await citizen(api, extra=rng.randrange(2))
            body = wait_body(api, day, [(g1, "first")], who["pax"])
            order = await call(api, "POST", "/v1/waitlist/trains", who, body, 201, f"s{step}")
            waiting.append((who, order["id"]))
        else:
            await fill(api)
            for who, order_id in list(waiting):
                mine = await call(api, "GET", f"/v1/waitlist/{order_id}", who)
                if mine["state"] == "fulfilled":
                    waiting.remove((who, order_id))
                    live.append((who, mine["hold_id"]))
        # Exact accounting, from the inventory itself.
        assert await seats.audit(g1, "first") == []
        occupancy = await seats.occupancy(g1, "first")
        sold = sum(p.count("1") for p in occupancy.values())
        in_holds = 0
        for _, hold_id in live:
            info = await seats.get_hold(hold_id)
            assert info is not None and info.state in ("held", "confirmed")
            in_holds += len(info.passengers) * (info.segments[1] - info.segments[0])
        shard = seats.keys.run_shard(g1)
        cooling = sum(p.b - p.a for p in await wl.pieces(shard) if p.run_id == g1)
        assert sold == in_holds + cooling, (step, action)
        assert await left(api, g1, "first") == 8 - sum(1 for p in occupancy.values() if "1" in p)


async def test_refunded_and_changed_away_seats_go_to_the_waitlist(api: Api) -> None:
    day = await setup(api)
    g1, g3 = f"G1-{day:%Y%m%d}", f"G3-{day:%Y%m%d}"
    [(five, order5), (three, order3)] = await sell_out_first(api, g1)
    for who, order in ((five, order5), (three, order3)):
        await call(api, "POST", f"/v1/orders/{order['id']}/pay", who)
    waiters = [await citizen(api) for _ in range(2)]
    orders = [
        await call(
            api,
            "POST",
            "/v1/waitlist/trains",
            w,
            wait_body(api, day, [(g1, "first")], w["pax"]),
            201,
        )
        for w in waiters
    ]
    # One ticket of the paid party of five is refunded (its seat alone comes back).
    await call(api, "POST", f"/v1/tickets/{order5['id']}.2/refund", five)
    assert await left(api, g1, "first") == 0
    # The party of three changes (改签) to G3: its three G1 seats come back.
    await call(api, "POST", f"/v1/orders/{order3['id']}/change", three, {"run_id": g3}, 200, "c1")
    assert await left(api, g1, "first") == 0
    report = await fill(api)
    assert report.fulfilled == 2
    for who, order in zip(waiters, orders, strict=True):
        assert (await call(api, "GET", f"/v1/waitlist/{order['id']}", who))["state"] == "fulfilled"
    # Two of the four seats went back on sale: nobody else waits (no delay in these tests).
    assert await left(api, g1, "first") == 2
    assert await api.services.seats.audit(g1, "first") == []
