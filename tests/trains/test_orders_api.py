"""Train orders over HTTP on real Postgres and Redis: hold, pay, e-tickets, cancel,
refund, 改签, the real-name rules, ownership, idempotent retries and an exact-count rush."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
from typing import Any

import pytest

from reservation.domain.clock import CHINA
from reservation.domain.verification import display, verification_code
from reservation.payments import SimulatedProvider
from reservation.settings import Settings
from reservation.workflows import pay_order as pay_module
from reservation.workflows.rebuild_inventory import drain_outbox
from reservation.workflows.train_orders import config, write_rows
from tests.api_fixture import Api
from tests.helpers import make_id_number, make_phone
from tests.trains import test_trains_api as trains

FARE_SECOND = 60650  # G1/G3 Beijing South -> Shanghai Hongqiao, 1318 km, ¥606.5
FARE_FIRST = 97550  # ¥975.5
_births = itertools.count()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(train_cache_ms=0)


def at(day: dt.date, hh: int, mm: int = 0) -> int:
    return int(dt.datetime.combine(day, dt.time(hh, mm), CHINA).timestamp() * 1000)


async def setup(api: Api, days_ahead: int = 3) -> dt.date:
    """The small network of test_trains_api; the clock at 12:00 China time tomorrow.

    Tomorrow, not today: Redis expires keys by the real clock (PEXPIREAT of deadlines,
    e.g. the account cap's), so the fake clock must not be behind it. At 12:00 today it
    was, every afternoon in China, and entries vanished before the test looked."""
    await trains.seed(api)
    api.clock.now_ms = at(trains.today(api) + dt.timedelta(days=1), 12)
    day = trains.today(api) + dt.timedelta(days=days_ahead)
    await trains.get(api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(day)})
    return day


async def citizen(api: Api, extra: int = 0) -> dict[str, Any]:
    """A registered citizen with ``extra`` more passengers; ``pax`` lists their ids."""
    # A birth date of its own: make_id_number has 1,000 serials per date.
    number = make_id_number(dt.date(1960, 1, 1) + dt.timedelta(days=next(_births)))
    resp = await api.client.post(
        "/v1/citizens", json={"name": "张三", "phone": make_phone(), "id_number": number}
    )
    assert resp.status == 201, await resp.text()
    who: dict[str, Any] = await resp.json()
    who["headers"] = {"Authorization": f"Bearer {who['token']}"}
    for i in range(extra):
        resp = await api.client.post(
            "/v1/passengers",
            json={"name": f"乘客{i}", "id_number": make_id_number()},
            headers=who["headers"],
        )
        assert resp.status == 201, await resp.text()
    body = await call(api, "GET", "/v1/passengers", who)
    who["pax"] = [p["id"] for p in body["passengers"]]
    return who


async def call(
    api: Api,
    method: str,
    path: str,
    who: dict[str, Any],
    json: Any = None,
    status: int = 200,
    key: str | None = None,
) -> dict[str, Any]:
    headers = dict(who["headers"])
    if key is not None:
        headers["Idempotency-Key"] = key
    resp = await api.client.request(method, path, json=json, headers=headers)
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def order_body(run: str, pax: list[str], **extra: Any) -> dict[str, Any]:
    body = {"run_id": run, "from": "VNP", "to": "AOH", "seat_class": "second"}
    return {**body, "passenger_ids": pax, **extra}


async def held_party(
    api: Api, extra: int
) -> tuple[str, dict[str, Any], SimulatedProvider, dict[str, Any]]:
    """G1 three days ahead, a citizen with ``extra`` more passengers, the simulated payment
    provider, and one held order for all of them: (run id, citizen, provider, order)."""
    day = await setup(api)
    g1 = f"G1-{day:%Y%m%d}"
    me = await citizen(api, extra=extra)
    provider = config(api.services).payments
    assert isinstance(provider, SimulatedProvider)
    party = await call(api, "POST", "/v1/orders", me, order_body(g1, me["pax"]), 201)
    return g1, me, provider, party


async def left(api: Api, run: str, cls: str = "second") -> int:
    """余票 for the run's whole length (VNP -> AOH on G1 and G3)."""
    remaining = await api.services.seats.remaining(run, cls)
    return remaining[0, remaining.nseg]


async def db_tickets(api: Api, hold_id: str) -> list[dict[str, Any]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM tickets WHERE hold_id = $1 ORDER BY passenger_no", hold_id
        )
    return [dict(r) for r in rows]


async def ticket_facts(api: Api) -> list[tuple[Any, ...]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, state, seat, price_fen, refund_fee_fen, verification_code,
                      change_of, changed_to, confirmed_at IS NOT NULL, ended_at IS NOT NULL
               FROM tickets ORDER BY id"""
        )
    return [tuple(r) for r in rows]


async def test_hold_pay_e_tickets_refund_and_change(api: Api) -> None:
    day = await setup(api)
    g1, g3 = f"G1-{day:%Y%m%d}", f"G3-{day:%Y%m%d}"
    found = await trains.get(
        api, "/v1/trains/search", {"from": "Beijing South", "to": "AOH", "date": str(day)}
    )
    assert [t["run_id"] for t in found["trains"]] == [g3, g1]
    me = await citizen(api, extra=3)
    provider = config(api.services).payments
    assert isinstance(provider, SimulatedProvider)

    # Two adjacent seats, one order.
    held = await call(api, "POST", "/v1/orders", me, order_body(g1, me["pax"][:2]), 201, "k1")
    assert [t["state"] for t in held["tickets"]] == ["held", "held"]
    assert held["price_fen"] == 2 * FARE_SECOND
    coach = {t["coach"] for t in held["tickets"]}
    seats = sorted(t["seat"] for t in held["tickets"])
    assert coach == {"02"} and seats[0][:2] == seats[1][:2]  # one row, side by side
    assert dt.datetime.fromisoformat(held["deadline"]) == dt.datetime.fromtimestamp(
        api.clock.now_ms / 1000 + 1800, dt.UTC
    )
    again = await call(api, "POST", "/v1/orders", me, order_body(g1, me["pax"][:2]), 200, "k1")
    assert again["id"] == held["id"] and again["replay"] is True
    assert await left(api, g1) == 13

    paid = await call(api, "POST", f"/v1/orders/{held['id']}/pay", me)
    assert provider.charged_fen(held["id"]) == 2 * FARE_SECOND
    rows = await db_tickets(api, held["id"])
    assert [r["state"] for r in rows] == ["confirmed", "confirmed"]
    for t, r in zip(paid["tickets"], rows, strict=True):
        assert r["verification_code"] == verification_code(t["id"], api.services.secret_key)
        assert t["verification_code"] == display(r["verification_code"])
        assert r["price_fen"] == FARE_SECOND
    ticket = await call(api, "GET", f"/v1/tickets/{held['id']}.2", me)
    assert ticket["train"] == "G1" and ticket["from"] == "VNP" and ticket["to"] == "AOH"
    assert ticket["departs_at"] == f"{day}T09:00:00+08:00"
    assert ticket["arrives_at"] == f"{day}T13:30:00+08:00"
    assert ticket["passenger"]["id"] == me["pax"][1]
    # Paying again answers the same, charges nothing more.
    again = await call(api, "POST", f"/v1/orders/{held['id']}/pay", me)
    assert again["tickets"] == paid["tickets"]
    assert provider.charged_fen(held["id"]) == 2 * FARE_SECOND

    # 改签 moves a whole order: one ticket of a live party cannot move alone.
    body = await call(api, "POST", f"/v1/tickets/{held['id']}.2/change", me, {"run_id": g3}, 409)
    assert body["code"] == "whole_order_only"
    # Refund one ticket 2 days 21 hours ahead: 5 % of ¥606.5 = ¥30.325 -> ¥30.5.
    refund = await call(api, "POST", f"/v1/tickets/{held['id']}.1/refund", me)
    assert (refund["fee_fen"], refund["refunded_fen"]) == (3050, FARE_SECOND - 3050)
    assert refund["ticket"]["state"] == "refunded"
    assert await left(api, g1) == 14  # one seat back, the other still sold
    again = await call(api, "POST", f"/v1/tickets/{held['id']}.1/refund", me)
    assert again == refund
    assert provider.refunded_fen(held["id"]) == FARE_SECOND - 3050
    assert await left(api, g1) == 14
    rows = await db_tickets(api, held["id"])
    assert [(r["state"], r["refund_fee_fen"]) for r in rows] == [
        ("refunded", 3050),
        ("confirmed", None),
    ]

    # Change the other to G3, first class: the new seat first, then the old one goes back.
    assert (await left(api, g1), await left(api, g3, "first")) == (14, 8)
    change = {"run_id": g3, "seat_class": "first"}
    path = f"/v1/tickets/{held['id']}.2/change"
    new = await call(api, "POST", path, me, change, key="c1")
    assert new["run_id"] == g3 and new["change_of"] == held["id"]
    assert [(t["state"], t["coach"]) for t in new["tickets"]] == [("confirmed", "01")]
    assert new["tickets"][0]["passenger"]["id"] == me["pax"][1]
    assert new["price_fen"] == FARE_FIRST
    assert (await left(api, g1), await left(api, g3, "first")) == (15, 7)
    assert provider.charged_fen(held["id"]) == 2 * FARE_SECOND + FARE_FIRST - FARE_SECOND
    retry = await call(api, "POST", path, me, change, key="c1")
    assert retry["id"] == new["id"] and retry["tickets"] == new["tickets"]
    assert (await left(api, g1), await left(api, g3, "first")) == (15, 7)
    assert provider.charged_fen(held["id"]) == FARE_SECOND + FARE_FIRST
    rows = await db_tickets(api, held["id"])
    assert [(r["state"], r["changed_to"]) for r in rows] == [
        ("refunded", None),
        ("changed", new["id"]),
    ]
    for ticket_path in (path, f"/v1/tickets/{new['id']}.1/change"):
        body = await call(api, "POST", ticket_path, me, {"run_id": g1}, 409, key="c2")
        assert body["code"] == "already_changed"
    # The new ticket refunds against what was paid for the original order.
    refund = await call(api, "POST", f"/v1/tickets/{new['id']}.1/refund", me)
    assert refund["fee_fen"] == 4900  # 5 % of ¥975.5 = ¥48.775 -> ¥49
    assert provider.refunded_fen(held["id"]) == FARE_SECOND - 3050 + FARE_FIRST - 4900
    assert await left(api, g3, "first") == 8

    # A party of two moves together (same fare), then is refunded together.
    party = order_body(g1, me["pax"][2:4])
    two = await call(api, "POST", "/v1/orders", me, party, 201, "k2")
    await call(api, "POST", f"/v1/orders/{two['id']}/pay", me)
    assert (await left(api, g1), await left(api, g3)) == (13, 15)
    moved = await call(api, "POST", f"/v1/orders/{two['id']}/change", me, {"run_id": g3})
    assert [t["passenger"]["id"] for t in moved["tickets"]] == me["pax"][2:4]
    assert len({(t["coach"], t["seat"][:2]) for t in moved["tickets"]}) == 1  # side by side
    assert (await left(api, g1), await left(api, g3)) == (15, 13)
    assert provider.charged_fen(two["id"]) == 2 * FARE_SECOND  # no difference to pay
    both = await call(api, "POST", f"/v1/orders/{moved['id']}/refund", me)
    assert (both["fee_fen"], both["refunded_fen"]) == (2 * 3050, 2 * (FARE_SECOND - 3050))
    assert [t["state"] for t in both["tickets"]] == ["refunded", "refunded"]
    assert (await left(api, g1), await left(api, g3)) == (15, 15)

    listed = await call(api, "GET", "/v1/orders", me)
    want = {held["id"], new["id"], two["id"], moved["id"]}
    assert {o["id"] for o in listed["orders"]} == want
    for run, cls in ((g1, "second"), (g3, "first"), (g3, "second")):
        assert await api.services.seats.audit(run, cls) == []
    # The persister's replay of every seat event agrees with what the workflows wrote.
    before = await ticket_facts(api)
    assert await drain_outbox(api.services) > 0
    assert await ticket_facts(api) == before


async def test_payment_deadline(api: Api) -> None:
    day = await setup(api, days_ahead=1)
    g1 = f"G1-{day:%Y%m%d}"
    me = await citizen(api, extra=2)
    held = await call(api, "POST", "/v1/orders", me, order_body(g1, [me["pax"][0]]), 201)
    assert dt.datetime.fromisoformat(held["deadline"]) == dt.datetime.fromtimestamp(
        api.clock.now_ms / 1000 + 30 * 60, dt.UTC
    )
    api.clock.now_ms = at(day, 7, 30)  # 90 minutes before departure: 10 minutes to pay
    held = await call(api, "POST", "/v1/orders", me, order_body(g1, [me["pax"][1]]), 201)
    assert dt.datetime.fromisoformat(held["deadline"]) == dt.datetime.fromtimestamp(
        api.clock.now_ms / 1000 + 10 * 60, dt.UTC
    )
    api.clock.now_ms = at(day, 8, 55)  # never after departure
    held = await call(api, "POST", "/v1/orders", me, order_body(g1, [me["pax"][2]]), 201)
    assert held["deadline"] == f"{day}T09:00:00+08:00"  # 01:00 UTC, in China time
    api.clock.now_ms = at(day, 9, 1)
    body = await call(api, "POST", f"/v1/orders/{held['id']}/pay", me, status=409)
    assert body["code"] == "hold_expired"
    assert config(api.services).payments.refunded_fen(held["id"]) == FARE_SECOND  # type: ignore[attr-defined]


async def test_bad_input_is_refused(api: Api) -> None:
    day = await setup(api)
    g1, g3 = f"G1-{day:%Y%m%d}", f"G3-{day:%Y%m%d}"
    me = await citizen(api, extra=5)
    pax = me["pax"]
    other = await citizen(api, extra=1)

    async def refused(body: dict[str, Any], status: int, code: str) -> None:
        got = await call(api, "POST", "/v1/orders", me, body, status)
        assert got["code"] == code, got

    await refused(order_body(g1, pax), 422, "party_size")  # 6
    await refused(order_body(g1, []), 422, "party_size")
    await refused(order_body(g1, [pax[0], pax[0]]), 422, "duplicate_passenger")
    await refused(order_body(g1, [pax[0], other["pax"][1]]), 422, "unknown_passenger")
    await refused(order_body(g1, [pax[0]], seat_class="deluxe"), 422, "validation_failed")
    await refused(order_body(g1, [pax[0]], to="VNP"), 422, "validation_failed")
    await refused(order_body("G9-20990101", [pax[0]]), 404, "not_found")
    await refused(order_body(f"G2-{day:%Y%m%d}", [pax[0]]), 422, "validation_failed")
    assert await left(api, g1) == 15  # nothing held by any refusal

    await call(api, "POST", "/v1/orders", me, order_body(g3, [pax[0]]), 201)  # 07:00-11:28
    got = await call(api, "POST", "/v1/orders", me, order_body(g1, [pax[1], pax[0]]), 409)
    assert (got["code"], got["fields"]["passenger"]) == ("overlapping_trip", pax[0])
    tip_nkh = {"from": "TIP", "to": "NKH"}  # 09:32-12:00
    await call(api, "POST", "/v1/orders", me, order_body(g1, [pax[1]], **tip_nkh), 201)
    # No overlap (VNP 09:00 -> TIP 09:30), but one ticket per passenger per run.
    await refused(order_body(g1, [pax[1]], to="TIP"), 409, "person_limit")

    # Three cancellations of unpaid orders today block new orders until midnight.
    for i in range(3):
        body = await call(api, "POST", "/v1/orders", me, order_body(g1, [pax[2 + i]]), 201)
        await call(api, "POST", f"/v1/orders/{body['id']}/cancel", me)
        again = await call(api, "POST", f"/v1/orders/{body['id']}/cancel", me)
        assert again["state"] == "cancelled"  # once: counted once
    await refused(order_body(g1, [pax[5]]), 409, "cancellation_limit")
    api.clock.now_ms = at(trains.today(api) + dt.timedelta(days=1), 0, 0)
    await call(api, "POST", "/v1/orders", me, order_body(g1, [pax[5]]), 201)

    # Sold out (13 left for the whole trip: 2 parties of 5 and one of 3), departed.
    assert await left(api, g1) == 13
    buyers = [await citizen(api, extra=4) for _ in range(3)]
    for b, size in zip(buyers, (5, 5, 3), strict=True):
        await call(api, "POST", "/v1/orders", b, order_body(g1, b["pax"][:size]), 201)
    assert await left(api, g1) == 0
    await refused(order_body(g1, [pax[3]], **tip_nkh), 409, "no_seat_for_segments")
    api.clock.now_ms = at(day, 9, 0)
    await refused(order_body(g1, [pax[4]]), 409, "departed")
    # Not released yet: the last day on sale, a minute before 08:00 the day it opened.
    last = trains.today(api) + dt.timedelta(days=14)
    api.clock.now_ms = at(trains.today(api), 12)
    await trains.get(api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(last)})
    api.clock.now_ms = at(trains.today(api), 7, 59)
    await refused(order_body(f"G1-{last:%Y%m%d}", [pax[4]]), 409, "not_released")


async def test_other_accounts_get_404(api: Api) -> None:
    day = await setup(api)
    g1, g3 = f"G1-{day:%Y%m%d}", f"G3-{day:%Y%m%d}"
    me, other = await citizen(api), await citizen(api)
    held = await call(api, "POST", "/v1/orders", me, order_body(g1, me["pax"]), 201)
    oid, tid = held["id"], f"{held['id']}.1"
    for method, path, body in (
        ("GET", f"/v1/orders/{oid}", None),
        ("POST", f"/v1/orders/{oid}/pay", None),
        ("POST", f"/v1/orders/{oid}/cancel", None),
        ("GET", f"/v1/tickets/{tid}", None),
        ("POST", f"/v1/tickets/{tid}/refund", None),
        ("POST", f"/v1/tickets/{tid}/change", {"run_id": g3}),
        ("POST", f"/v1/orders/{oid}/refund", None),
        ("POST", f"/v1/orders/{oid}/change", {"run_id": g3}),
        ("GET", "/v1/orders/000-nonsense", None),
        ("GET", "/v1/tickets/nonsense", None),
    ):
        got = await call(api, method, path, other, body, 404)
        assert got["code"] == "not_found", (path, got)
    assert (await call(api, "GET", "/v1/orders", other))["orders"] == []
    # Nothing happened to the owner's order.
    await call(api, "POST", f"/v1/orders/{oid}/pay", me)
    resp = await api.client.get(f"/v1/orders/{oid}")
    assert resp.status == 401


async def test_declined_payment_and_postgres_down(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = await setup(api)
    g1 = f"G1-{day:%Y%m%d}"
    me = await citizen(api)
    provider = config(api.services).payments
    assert isinstance(provider, SimulatedProvider)
    held = await call(api, "POST", "/v1/orders", me, order_body(g1, me["pax"]), 201)
    provider.decline_orders.add(held["id"])
    body = await call(api, "POST", f"/v1/orders/{held['id']}/pay", me, status=402, key="p1")
    assert body["code"] == "payment_declined"
    live = await api.services.seats.get_hold(held["id"])
    assert live is not None and live.state == "held"
    assert [r["state"] for r in await db_tickets(api, held["id"])] == ["held"]
    provider.decline_orders.clear()
    # The same attempt key answers the same decline; a new key tries again.
    await call(api, "POST", f"/v1/orders/{held['id']}/pay", me, status=402, key="p1")

    real = write_rows
    failures = 0

    async def down_once(*args: Any, **kwargs: Any) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise OSError("connection refused")
        await real(*args, **kwargs)

    monkeypatch.setattr(pay_module, "write_rows", down_once)
    body = await call(api, "POST", f"/v1/orders/{held['id']}/pay", me, status=503, key="p2")
    assert body["code"] == "store_unavailable"
    assert [r["state"] for r in await db_tickets(api, held["id"])] == ["held"]
    done = await call(api, "POST", f"/v1/orders/{held['id']}/pay", me, key="p2")
    assert [t["state"] for t in done["tickets"]] == ["confirmed"]
    assert [r["state"] for r in await db_tickets(api, held["id"])] == ["confirmed"]
    assert provider.charged_fen(held["id"]) == FARE_SECOND  # charged once


async def test_rush_never_oversells_and_every_paid_ticket_is_committed(api: Api) -> None:
    day = await setup(api)
    g1 = f"G1-{day:%Y%m%d}"
    n = 2000
    people = await asyncio.gather(*(citizen(api) for _ in range(n)))
    rng = random.Random(7)
    trips = [sorted(rng.sample(range(4), 2)) for _ in range(n)]
    stations = ["VNP", "TIP", "NKH", "AOH"]

    async def buy(who: dict[str, Any], a: int, b: int) -> str | None:
        body = {
            "run_id": g1,
            "from": stations[a],
            "to": stations[b],
            "seat_class": "second",
            "passenger_ids": who["pax"],
        }
        resp = await api.client.post("/v1/orders", json=body, headers=who["headers"])
        if resp.status != 201:
            assert (await resp.json())["code"] == "no_seat_for_segments"
            return None
        oid: str = (await resp.json())["id"]
        resp = await api.client.post(f"/v1/orders/{oid}/pay", headers=who["headers"])
        assert resp.status == 200, await resp.text()
        return oid

    paid = [
        o
        for o in await asyncio.gather(
            *(buy(w, a, b) for w, (a, b) in zip(people, trips, strict=True))
        )
        if o
    ]
    assert paid
    assert await api.services.seats.audit(g1, "second") == []
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT hold_id, coach, seat, seg_from, seg_to FROM tickets"
            " WHERE run_id = $1 AND state = 'confirmed'",
            g1,
        )
    assert sorted(r["hold_id"] for r in rows) == sorted(paid)
    # Each seat's sold segments are exactly the union of its confirmed tickets, disjoint.
    sold: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        marks = sold.setdefault((r["coach"], r["seat"]), [0, 0, 0])
        for s in range(r["seg_from"], r["seg_to"]):
            marks[s] += 1
    assert all(m <= 1 for marks in sold.values() for m in marks)
    occupancy = await api.services.seats.occupancy(g1, "second")
    assert len(occupancy) == 15
    for ref, pattern in occupancy.items():
        assert pattern == "".join(str(m) for m in sold.get((ref.coach, ref.seat), [0, 0, 0]))


async def test_refund_fee_tiers_by_departure(api: Api) -> None:
    day = await setup(api, days_ahead=10)
    g1 = f"G1-{day:%Y%m%d}"
    me = await citizen(api, extra=5)
    orders = []
    for pax in me["pax"][:6]:
        held = await call(api, "POST", "/v1/orders", me, order_body(g1, [pax]), 201)
        await call(api, "POST", f"/v1/orders/{held['id']}/pay", me)
        orders.append(held["id"])
    assert await left(api, g1) == 9
    departs = at(day, 9)
    hour = 3_600_000
    cases = [
        (at(trains.today(api), 12), 0),  # 10 days 21 hours: free
        (departs - 8 * 24 * hour, 0),  # exactly 8 days: free
        (departs - 8 * 24 * hour + 1, 3050),  # 5 % of ¥606.5 = ¥30.325 -> ¥30.5
        (departs - 48 * hour, 3050),  # exactly 48 h: 5 %
        (departs - 24 * hour, 6050),  # exactly 24 h: 10 %, ¥60.65 -> ¥60.5
        (departs - 1, 12150),  # 20 %, ¥121.30 -> ¥121.5
    ]
    for (now, fee), oid in zip(cases, orders, strict=True):
        api.clock.now_ms = now
        body = await call(api, "POST", f"/v1/tickets/{oid}.1/refund", me)
        assert (body["fee_fen"], body["refunded_fen"]) == (fee, FARE_SECOND - fee), now
    assert await left(api, g1) == 15
    # At departure: no refund, nothing changes.
    last = await citizen(api)
    api.clock.now_ms = departs - hour
    held = await call(api, "POST", "/v1/orders", last, order_body(g1, last["pax"]), 201)
    await call(api, "POST", f"/v1/orders/{held['id']}/pay", last)
    api.clock.now_ms = departs
    body = await call(api, "POST", f"/v1/tickets/{held['id']}.1/refund", last, status=409)
    assert body["code"] == "refund_closed"
    assert [r["state"] for r in await db_tickets(api, held["id"])] == ["confirmed"]
    assert await left(api, g1) == 14


async def test_concurrent_retries_move_seats_and_money_once(api: Api) -> None:
    g1, me, provider, party = await held_party(api, extra=2)
    oid = party["id"]
    # The provider is down once: 503, and the same request again completes.
    provider.fail_next = 1
    body = await call(api, "POST", f"/v1/orders/{oid}/pay", me, status=503)
    assert body["code"] == "payment_unavailable"
    # Two payments at once with different keys: one sale, the other charge given back.
    paid = await asyncio.gather(
        *(call(api, "POST", f"/v1/orders/{oid}/pay", me, key=k) for k in ("a", "b"))
    )
    assert paid[0]["tickets"] == paid[1]["tickets"]
    assert provider.charged_fen(oid) - provider.refunded_fen(oid) == 3 * FARE_SECOND
    assert await left(api, g1) == 12
    # Two refunds of one ticket at once: the seat and the money go back once.
    refunds = await asyncio.gather(
        *(call(api, "POST", f"/v1/tickets/{oid}.2/refund", me) for _ in range(2))
    )
    assert {(r["fee_fen"], r["refunded_fen"]) for r in refunds} == {(3050, FARE_SECOND - 3050)}
    assert await left(api, g1) == 13
    assert provider.charged_fen(oid) - provider.refunded_fen(oid) == 2 * FARE_SECOND + 3050
    # The rest of the order goes back together, once.
    rest = await asyncio.gather(
        *(call(api, "POST", f"/v1/orders/{oid}/refund", me) for _ in range(2))
    )
    assert {(r["fee_fen"], r["refunded_fen"]) for r in rest} == {
        (3 * 3050, 3 * (FARE_SECOND - 3050))
    }
    assert await left(api, g1) == 15
    assert provider.charged_fen(oid) - provider.refunded_fen(oid) == 3 * 3050
    assert [r["refund_fee_fen"] for r in await db_tickets(api, oid)] == [3050, 3050, 3050]
    assert await api.services.seats.audit(g1, "second") == []


async def test_refunding_every_ticket_of_a_party_at_once(api: Api) -> None:
    g1, me, provider, party = await held_party(api, extra=2)
    await call(api, "POST", f"/v1/orders/{party['id']}/pay", me)
    assert await left(api, g1) == 12
    done = await asyncio.gather(
        *(call(api, "POST", f"/v1/tickets/{party['id']}.{n}/refund", me) for n in (1, 2, 3))
    )
    assert [(d["ticket"]["state"], d["fee_fen"]) for d in done] == [("refunded", 3050)] * 3
    assert await left(api, g1) == 15
    assert provider.refunded_fen(party["id"]) == 3 * (FARE_SECOND - 3050)
    live = await api.services.seats.get_hold(party["id"])
    assert live is not None and live.state == "cancelled"
    assert await api.services.seats.audit(g1, "second") == []


async def test_one_person_never_gets_two_overlapping_trips_in_a_race(api: Api) -> None:
    """The same person is on eight accounts' passenger lists; all eight race to hold G1
    and G3 (overlapping in time) for them at once: exactly one hold wins."""
    day = await setup(api)
    g1, g3 = f"G1-{day:%Y%m%d}", f"G3-{day:%Y%m%d}"
    number = make_id_number()
    accounts = [await citizen(api) for _ in range(8)]
    for who in accounts:
        resp = await api.client.post(
            "/v1/passengers",
            json={"name": "李四", "id_number": number},
            headers=who["headers"],
        )
        assert resp.status == 201, await resp.text()
        body = await call(api, "GET", "/v1/passengers", who)
        who["shared"] = next(p["id"] for p in body["passengers"] if p["name"] == "李四")

    async def attempt(who: dict[str, Any], run: str) -> int:
        resp = await api.client.post(
            "/v1/orders", json=order_body(run, [who["shared"]]), headers=who["headers"]
        )
        return resp.status

    statuses = await asyncio.gather(*(attempt(who, run) for who in accounts for run in (g1, g3)))
    assert sorted(statuses).count(201) == 1, statuses
    assert set(statuses) <= {201, 409}, statuses
    async with api.services.pool.acquire() as conn:
        live = await conn.fetchval(
            "SELECT count(*) FROM tickets WHERE state IN ('held', 'confirmed')"
        )
    assert live == 1


async def test_a_ticket_refund_racing_the_orders_change_never_moves_a_refunded_seat(
    api: Api,
) -> None:
    """A party of three pays; ticket 1 is refunded while the whole order changes to G3,
    many times over: either the refund comes first (the change moves two) or the change
    does (the refund is refused). A refunded passenger never gets a new ticket."""
    day = await setup(api)
    g1, g3 = f"G1-{day:%Y%m%d}", f"G3-{day:%Y%m%d}"

    async def refund(who: dict[str, Any], order: str) -> int:
        resp = await api.client.post(f"/v1/tickets/{order}.1/refund", headers=who["headers"])
        return resp.status

    async def change(who: dict[str, Any], order: str, key: str) -> tuple[int, dict[str, Any]]:
        resp = await api.client.post(
            f"/v1/orders/{order}/change",
            json={"run_id": g3},
            headers={**who["headers"], "Idempotency-Key": key},
        )
        return resp.status, await resp.json()

    for round_no in range(4):
        me = await citizen(api, extra=2)
        held = await call(api, "POST", "/v1/orders", me, order_body(g1, me["pax"]), 201)
        await call(api, "POST", f"/v1/orders/{held['id']}/pay", me)
        if round_no % 2:
            refunded, (changed, body) = await asyncio.gather(
                refund(me, held["id"]), change(me, held["id"], f"c{round_no}")
            )
        else:
            (changed, body), refunded = await asyncio.gather(
                change(me, held["id"], f"c{round_no}"), refund(me, held["id"])
            )
        assert changed == 200, body
        async with api.services.pool.acquire() as conn:
            new_tickets = await conn.fetchval(
                "SELECT count(*) FROM tickets WHERE hold_id = $1 AND state = 'confirmed'",
                body["id"],
            )
            refunded_rows = await conn.fetchval(
                "SELECT count(*) FROM tickets WHERE hold_id = $1 AND state = 'refunded'",
                held["id"],
            )
        if refunded == 200:
            assert (new_tickets, refunded_rows) == (2, 1)
        else:
            assert refunded == 409 and (new_tickets, refunded_rows) == (3, 0)
    assert await api.services.seats.audit(g1, "second") == []
    assert await api.services.seats.audit(g3, "second") == []


async def test_refunds_of_one_order_at_once_take_turns(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two refunds of the same order (or ticket) at once run one after the other under the
    passengers' locks: each attempt owns its locks, so the second sees the first's result
    instead of releasing seats and recording the same payment alongside it."""
    g1, me, provider, party = await held_party(api, extra=1)
    await call(api, "POST", f"/v1/orders/{party['id']}/pay", me, key="pay")
    inside, most = 0, 0
    refund = provider.refund

    async def slow_refund(order_id: str, amount_fen: int, key: str) -> Any:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.05)  # a provider's round trip: the other attempt runs now
        try:
            return await refund(order_id, amount_fen, key)
        finally:
            inside -= 1

    monkeypatch.setattr(provider, "refund", slow_refund)
    for path in (f"/v1/tickets/{party['id']}.1/refund", f"/v1/orders/{party['id']}/refund"):
        answers = await asyncio.gather(*(call(api, "POST", path, me) for _ in range(2)))
        assert answers[0] == answers[1]
    assert most == 1
    assert await left(api, g1) == 15
    async with api.services.pool.acquire() as conn:
        kinds = await conn.fetch(
            "SELECT kind FROM payments WHERE order_id = $1 ORDER BY kind", party["id"]
        )
    assert [r["kind"] for r in kinds] == ["charge", "refund", "refund"]
