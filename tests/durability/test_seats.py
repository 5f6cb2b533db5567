"""Train seats after a Redis loss: the epoch guard, the rebuild from ``tickets`` and the
reconciliation (issue 4 for seats).

The app runs guarded (as the service does). Orders are made over HTTP in every state,
persisted, then every key of the test's prefix is deleted, as a Redis that lost its data
comes back. Seat sales must close (503 ``sales_closed``, lazily loaded maps included)
until the rebuild, which brings back exactly the sold seat-segments, holds, passenger
index and deadlines; after it the remaining seats sell exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from inventory import hold_record
from inventory.errors import PersonLimitReached, SalesClosed
from reservation.settings import Settings
from reservation.workflows.rebuild_inventory import (
    drain_outbox,
    rebuild_inventory,
    reconcile_inventory,
    sales_open,
)
from reservation.workflows.train_inventory import inventory
from tests.api_fixture import Api
from tests.durability.test_rebuild import forget_everything
from tests.trains import test_orders_api as orders
from tests.trains import test_trains_api as trains

SECOND_SEATS = 15  # the "mini-2" composition of the test network


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(train_cache_ms=0)


async def order(
    api: Api, who: dict[str, Any], run: str, pax: list[str], *, key: str, **trip: str
) -> tuple[int, dict[str, Any]]:
    headers = {**who["headers"], "Idempotency-Key": key}
    resp = await api.client.post(
        "/v1/orders", json=orders.order_body(run, pax, **trip), headers=headers
    )
    body: dict[str, Any] = await resp.json()
    if resp.status == 503:
        assert resp.headers["Retry-After"]
    return resp.status, body


async def post(api: Api, who: dict[str, Any], path: str) -> tuple[int, dict[str, Any]]:
    resp = await api.client.post(path, headers=who["headers"])
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def live_tickets(api: Api) -> dict[str, str]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, state FROM tickets")
    return {r["id"]: r["state"] for r in rows}


@pytest.fixture
async def booked(api: Api) -> dict[str, Any]:
    """G1 of three days ahead: orders held, paid, cancelled, a party of two with one
    ticket refunded, and a held order on a short trip; all persisted."""
    day = await orders.setup(api)
    run = f"G1-{day:%Y%m%d}"
    people = {n: await orders.citizen(api, extra=1 if n == "party" else 0) for n in
              ("held", "paid", "gone", "party", "short")}  # fmt: skip
    ids: dict[str, str] = {}
    for name in ("held", "paid", "gone"):
        status, body = await order(api, people[name], run, people[name]["pax"], key=name)
        assert status == 201, body
        ids[name] = body["id"]
    status, body = await order(api, people["party"], run, people["party"]["pax"], key="p")
    assert status == 201, body
    ids["party"] = body["id"]
    status, body = await order(
        api, people["short"], run, people["short"]["pax"], key="s", **{"from": "TIP", "to": "NKH"}
    )
    assert status == 201, body
    ids["short"] = body["id"]
    assert (await post(api, people["paid"], f"/v1/orders/{ids['paid']}/pay"))[0] == 200
    assert (await post(api, people["gone"], f"/v1/orders/{ids['gone']}/cancel"))[0] == 200
    assert (await post(api, people["party"], f"/v1/orders/{ids['party']}/pay"))[0] == 200
    status, body = await post(api, people["party"], f"/v1/tickets/{ids['party']}.2/refund")
    assert status == 200, body
    await drain_outbox(api.services)
    return {"day": day, "run": run, "people": people, "ids": ids}


async def test_lost_seats_close_sales_until_rebuilt_then_sell_exactly_once(
    api: Api, booked: dict[str, Any]
) -> None:
    run, ids, people = booked["run"], booked["ids"], booked["people"]
    seats = api.services.seats
    assert await reconcile_inventory(api.services) == []
    pg_before = await live_tickets(api)

    newcomer = await orders.citizen(api)
    await forget_everything(api)
    inventory(api.services).loaded.clear()  # a process that has not seen the runs yet

    # Every seat write is refused, and nothing is published empty over sold seats.
    status, body = await order(api, newcomer, run, newcomer["pax"], key="n")
    assert (status, body["code"]) == (503, "sales_closed")
    assert (await post(api, people["held"], f"/v1/orders/{ids['held']}/pay"))[0] in (404, 503)
    with pytest.raises(SalesClosed):
        await seats.confirm(people["held"]["account_id"], ids["held"])
    resp = await api.client.get(f"/v1/train-runs/{run}/remaining")
    assert (resp.status, (await resp.json())["code"]) == (503, "sales_closed")
    later = booked["day"] + dt.timedelta(days=1)
    found = await trains.get(
        api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(later)}
    )
    assert {t["not_on_sale_reason"] for t in found["trains"]} == {"sales_closed"}
    assert not await api.services.redis.exists(seats.unit(f"G1-{later:%Y%m%d}", "second").meta)
    assert not await sales_open(api.services)

    report = await rebuild_inventory(api.services)
    assert report.oversold_seats == []
    # G1 and G3 of the booked day (searched by setup), two classes each.
    assert report.seat_units == 4
    assert (report.seat_holds_live, report.seat_confirmed, report.seat_ended) == (2, 2, 1)
    assert await reconcile_inventory(api.services) == []
    # Sold: exactly the live tickets' seats (a cooled seat of a cancel is back on sale).
    sold = {
        ref.seat
        for ref, pattern in (await seats.occupancy(run, "second")).items()
        if "1" in pattern
    }
    async with api.services.pool.acquire() as conn:
        live = await conn.fetch(
            "SELECT seat FROM tickets WHERE run_id = $1 AND seat_class = 'second'"
            " AND state IN ('held', 'confirmed')",
            run,
        )
    assert sold == {r["seat"] for r in live} and len(live) == 4
    assert await seats.audit(run, "second") == []
    assert await live_tickets(api) == pg_before

    # The restored holds behave: the held order pays, a retry replays, the party's
    # refunded seat stays free and its other passenger still holds theirs.
    status, body = await post(api, people["held"], f"/v1/orders/{ids['held']}/pay")
    assert (status, body["state"]) == (200, "confirmed")
    status, body = await order(api, people["short"], run, people["short"]["pax"], key="s",
                               **{"from": "TIP", "to": "NKH"})  # fmt: skip
    assert (status, body["id"]) == (200, ids["short"])
    # One ticket per person per run, in Lua (the API's overlap rule answers first).
    paid = await seats.get_hold(ids["paid"])
    assert paid is not None and paid.state == "confirmed"
    with pytest.raises(PersonLimitReached):
        await seats.hold("x", run, "first", 0, 1, list(paid.passengers), idempotency_key="x")
    cap = api.services.keys.account_holds(people["short"]["account_id"])
    assert await api.services.redis.zscore(cap, ids["short"]) is not None

    # Exactly the seats free for the whole trip sell, then none: 15 less "held", "paid",
    # the party's remaining passenger and the short trip's seat.
    free = await orders.left(api, run)
    assert free == SECOND_SEATS - 4
    buyers = [await orders.citizen(api) for _ in range(free + 3)]
    results = await asyncio.gather(
        *(order(api, b, run, b["pax"], key=f"rush-{i}") for i, b in enumerate(buyers))
    )
    assert sorted(status for status, _ in results) == [201] * free + [409] * 3
    assert {body["code"] for status, body in results if status == 409} == {"no_seat_for_segments"}
    await drain_outbox(api.services)
    assert await reconcile_inventory(api.services) == []


async def test_reconcile_reports_seat_differences(api: Api, booked: dict[str, Any]) -> None:
    run, ids = booked["run"], booked["ids"]
    seats, redis = api.services.seats, api.services.redis
    unit = seats.unit(run, "second")
    assert await reconcile_inventory(api.services) == []

    # A sold seat shown free, a lost hold, a hold Postgres never heard of, a wrong state.
    ordinal, record = sorted((await redis.hgetall(unit.seats)).items())[0]
    await redis.hset(unit.seats, ordinal, "000" + record[3:])
    await redis.unlink(seats.keys.hold(ids["held"]))
    extra = f"{unit.shard:03d}-{'e' * 32}"
    fixed = hold_record.pack({"kind": "seat", "run": run})
    await redis.hset(seats.keys.hold(extra), mapping={hold_record.FIELD: fixed, "state": "held"})
    await redis.hset(seats.keys.hold(ids["paid"]), "state", "cancelled")
    paid = await seats.get_hold(ids["paid"])
    assert paid is not None
    await redis.hdel(unit.pax, paid.passengers[0])  # the person may book the run again

    diffs = await reconcile_inventory(api.services)
    subjects = {(d.kind, d.subject) for d in diffs}
    assert ("missing_seat_hold", ids["held"]) in subjects
    assert ("extra_seat_hold", extra) in subjects
    assert ("seat_hold_state", ids["paid"]) in subjects
    assert any(k == "seat_pattern" and s.endswith(f"seat {ordinal}") for k, s in subjects)
    assert any(k == "seat_index" for k, _ in subjects)  # the map's indexes disagree now
    assert ("seat_passenger", f"{run} person {paid.passengers[0][:12]}") in subjects
    assert all(d.describe() for d in diffs)

    report = await rebuild_inventory(api.services)
    assert report.removed_seat_holds == 1
    assert await reconcile_inventory(api.services) == []


async def test_overdue_restored_holds_expire_through_the_sweeper(
    api: Api, booked: dict[str, Any]
) -> None:
    run, ids, people = booked["run"], booked["ids"], booked["people"]
    await forget_everything(api)
    api.clock.advance(3600)  # both held orders are past their deadline now
    await rebuild_inventory(api.services)
    assert await reconcile_inventory(api.services) == []
    status, body = await post(api, people["held"], f"/v1/orders/{ids['held']}/pay")
    assert (status, body["code"]) == (409, "hold_expired")
    shard = api.services.seats.unit(run, "second").shard
    expired = await api.services.seats.expire_due(shard, now_ms=api.clock.now_ms)
    assert {o.hold_id for o in expired} >= {ids["held"], ids["short"]}
    await drain_outbox(api.services)
    states = await live_tickets(api)
    assert states[f"{ids['held']}.1"] == states[f"{ids['short']}.1"] == "expired"
    assert await reconcile_inventory(api.services) == []


async def test_a_run_with_live_tickets_is_never_published_empty(
    api: Api, booked: dict[str, Any]
) -> None:
    """Even if its "published" flag were lost: its map comes back from the tickets."""
    run, seats = booked["run"], api.services.seats
    async with api.services.pool.acquire() as conn:
        await conn.execute("UPDATE train_runs SET seats_published_at = NULL WHERE id = $1", run)
    for cls in ("first", "second"):
        await api.services.redis.delete(seats.unit(run, cls).meta)
    inventory(api.services).loaded.clear()
    resp = await api.client.get(f"/v1/train-runs/{run}/remaining")
    assert (resp.status, (await resp.json())["code"]) == (503, "sales_closed")
    assert not await api.services.redis.exists(seats.unit(run, "second").meta)

    await rebuild_inventory(api.services)
    assert await reconcile_inventory(api.services) == []
    resp = await api.client.get(f"/v1/train-runs/{run}/remaining")
    assert resp.status == 200
    assert await orders.left(api, run) == SECOND_SEATS - 4
