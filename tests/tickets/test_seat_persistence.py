"""Seat events on real Redis and Postgres: the seat engine's outbox -> ``tickets`` rows,
replays harmless, slot bookings unaffected; the sweeper expires due seat holds.

Everything runs with ONE shard, so slot holds and seat holds share the outbox and the
deadline index (the mixed case the persister and the sweeper must tell apart)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from inventory.seat_engine import SeatEngine, SeatHold, SeatSpec
from reservation.domain.bookings import TicketRow
from reservation.domain.clock import from_ms
from reservation.domain.verification import verification_code
from reservation.payments import SimulatedProvider
from reservation.settings import Settings
from reservation.store import bookings as booking_store
from reservation.workers.persister import Entry, Persister
from reservation.workers.sweeper import Sweeper
from tests.api_fixture import Api
from tests.workers.test_persister import bookings, life, make_persister

HOLD_MS = 15 * 60_000
P1, P2, P3, P4 = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)  # passengers' ID HMACs


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(shard_count=1)


@pytest.fixture
async def engine(api: Api) -> SeatEngine:
    eng = SeatEngine(api.services.redis, api.services.keys, clock=api.clock, hold_ms=HOLD_MS)
    seats = [SeatSpec("03", row, letter) for row in (1, 2) for letter in "ABCDF"]
    assert await eng.publish("G1-20261201", "second", 4, seats)
    assert await eng.publish("G3-20261201", "second", 4, seats)
    return eng


async def drain(persister: Persister) -> int:
    written = 0
    while (result := await persister.run_once()).written:
        written += result.written
    assert result.dead_lettered == 0
    return written


async def tickets(api: Api) -> dict[str, dict[str, Any]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM tickets ORDER BY id")
    return {r["id"]: dict(r) for r in rows}


async def all_entries(api: Api) -> list[Entry]:
    raw = await api.services.redis.xrange(api.services.keys.outbox(0))
    return [Entry(0, eid, fields) for eid, fields in raw]


def seats_of(h: SeatHold) -> list[tuple[str, str, str]]:
    return [(s.coach, s.seat, s.position) for s in h.seats]


def facts(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["state"],
        row["state_rank"],
        row["person_hmac"],
        row["account_id"],
        row["run_id"],
        row["seg_from"],
        row["seg_to"],
        (row["coach"], row["seat"], row["position"]),
        row["held_at"],
        row["deadline"],
        row["confirmed_at"],
        row["ended_at"],
        row["end_reason"],
        row["change_of"],
        row["changed_to"],
        row["verification_code"],
    )


async def test_seat_life_cycles_become_ticket_rows_and_replays_change_nothing(
    api: Api, engine: SeatEngine
) -> None:
    t0 = api.clock.now_ms
    key = api.services.secret_key
    paid = await engine.hold("acct-A", "G1-20261201", "second", 0, 2, [P1, P2], idempotency_key="1")
    moved = await engine.hold("acct-A", "G1-20261201", "second", 1, 4, [P3], idempotency_key="2")
    unpaid = await engine.hold("acct-B", "G1-20261201", "second", 2, 4, [P4], idempotency_key="3")
    api.clock.advance(10)
    await engine.confirm("acct-A", paid.hold_id)
    await engine.confirm("acct-A", moved.hold_id)
    slot_booking = await life(api, confirm=True, cancel=False)  # a slot booking in between
    api.clock.now_ms = t0 + 20_000
    await engine.cancel("acct-A", paid.hold_id)
    await engine.cancel("acct-B", unpaid.hold_id)
    api.clock.now_ms = t0 + 30_000
    new = await engine.change(
        "acct-A", moved.hold_id, "G3-20261201", "second", 1, 4, idempotency_key="4"
    )

    entries = await all_entries(api)
    persister = make_persister(api)
    # Seat: 3 held, 2 confirmed, 2 cancelled, 3 for the change (held, released, confirmed);
    # slot: held, confirmed.
    assert await drain(persister) == len(entries) == 3 + 2 + 2 + 3 + 2

    rows = await tickets(api)
    deadline = from_ms(t0 + HOLD_MS)
    confirmed, cancelled, changed_at = from_ms(t0 + 10_000), from_ms(t0 + 20_000), t0 + 30_000

    def code(hold_id: str, n: int) -> str:
        return verification_code(f"{hold_id}.{n}", key)

    [s1, s2] = seats_of(paid)
    [s3] = seats_of(moved)
    [s4] = seats_of(unpaid)
    [s5] = seats_of(new)
    assert {tid: facts(r) for tid, r in rows.items()} == {
        f"{paid.hold_id}.1": ("cancelled", 3, P1, "acct-A", "G1-20261201", 0, 2, s1,
                              from_ms(t0), deadline, confirmed, cancelled, "cancelled",
                              None, None, code(paid.hold_id, 1)),
        f"{paid.hold_id}.2": ("cancelled", 3, P2, "acct-A", "G1-20261201", 0, 2, s2,
                              from_ms(t0), deadline, confirmed, cancelled, "cancelled",
                              None, None, code(paid.hold_id, 2)),
        f"{moved.hold_id}.1": ("changed", 3, P3, "acct-A", "G1-20261201", 1, 4, s3,
                               from_ms(t0), deadline, confirmed, from_ms(changed_at),
                               "changed", None, new.hold_id, code(moved.hold_id, 1)),
        f"{unpaid.hold_id}.1": ("cancelled", 3, P4, "acct-B", "G1-20261201", 2, 4, s4,
                                from_ms(t0), deadline, None, cancelled, "cancelled",
                                None, None, None),
        f"{new.hold_id}.1": ("confirmed", 2, P3, "acct-A", "G3-20261201", 1, 4, s5,
                             from_ms(changed_at), from_ms(changed_at + HOLD_MS),
                             from_ms(changed_at), None, None, moved.hold_id, None,
                             code(new.hold_id, 1)),
    }  # fmt: skip
    assert [r["passenger_no"] for r in rows.values() if r["hold_id"] == paid.hold_id] == [1, 2]

    # Slot bookings are written exactly as before, and only they.
    booked = await bookings(api)
    assert list(booked) == [slot_booking.hold_id]
    assert booked[slot_booking.hold_id]["state"] == "confirmed"
    async with api.services.pool.acquire() as conn:
        stored = await conn.fetch("SELECT event_id FROM inventory_events")
        assert {r["event_id"] for r in stored} == {e.event_id for e in entries}
        # The rule inputs: B's unpaid cancellation counts, A's paid one does not.
        assert await booking_store.unpaid_cancellation_times(conn, "acct-B", from_ms(t0)) == [
            cancelled
        ]
        assert await booking_store.unpaid_cancellation_times(conn, "acct-A", from_ms(t0)) == []
        live = await booking_store.live_tickets_of_people(conn, [P1, P3, P4])
        assert [(r["person_hmac"], r["run_id"], r["seg_from"], r["seg_to"]) for r in live] == [
            (P3, "G3-20261201", 1, 4)
        ]

    # Replays (the whole stream again, then backwards) change nothing, not even updated_at.
    before = await tickets(api)
    replay = await persister._process(entries)
    assert replay.written == len(entries) and replay.dead_lettered == 0
    await persister._process(entries[::-1])
    assert await tickets(api) == before
    assert list(await bookings(api)) == [slot_booking.hold_id]


async def test_a_confirmation_written_before_its_hold_event_gets_the_hold_facts_later(
    api: Api, engine: SeatEngine
) -> None:
    t0 = api.clock.now_ms
    h = await engine.hold("acct-A", "G1-20261201", "second", 0, 1, [P1], idempotency_key="k")
    api.clock.advance(5)
    await engine.confirm("acct-A", h.hold_id)
    held, confirmed = await all_entries(api)
    persister = make_persister(api)
    await persister._process([confirmed])
    [row] = (await tickets(api)).values()
    assert (row["state"], row["held_at"], row["confirmed_at"]) == (
        "confirmed",
        None,
        from_ms(t0 + 5000),
    )
    await persister._process([held])
    [row] = (await tickets(api)).values()
    assert (row["state"], row["held_at"], row["deadline"], row["confirmed_at"]) == (
        "confirmed",
        from_ms(t0),
        from_ms(t0 + HOLD_MS),
        from_ms(t0 + 5000),
    )


async def test_a_refund_is_recorded_once_and_not_undone_by_a_late_cancelled_event(
    api: Api, engine: SeatEngine
) -> None:
    t0 = api.clock.now_ms
    h = await engine.hold("acct-A", "G1-20261201", "second", 0, 1, [P1, P2], idempotency_key="k")
    await engine.confirm("acct-A", h.hold_id)
    persister = make_persister(api)
    await drain(persister)
    pay = SimulatedProvider()
    charge = await pay.charge(h.hold_id, 2 * 55300, "pay-k")
    refund = await pay.refund(h.hold_id, 2 * (55300 - 2750), "refund-k")
    async with api.services.pool.acquire() as conn:
        # The confirm path writes the fares it charged (the seat events do not carry them).
        rows = await conn.fetch("SELECT * FROM tickets WHERE hold_id = $1", h.hold_id)
        await booking_store.upsert_tickets(conn, [priced(dict(r), 55300) for r in rows])
        for result, key in ((charge, "pay-k"), (refund, "refund-k"), (refund, "refund-k")):
            await booking_store.record_payment(
                conn,
                payment_id=result.payment_id,
                order_id=result.order_id,
                kind=result.kind,
                amount_fen=result.amount_fen,
                provider=result.provider,
                status=result.status.value,
                idempotency_key=key,
            )
        at = from_ms(t0 + 60_000)
        assert await booking_store.mark_refunded(conn, h.hold_id, [2750, 2750], at) == 2
        assert await booking_store.mark_refunded(conn, h.hold_id, [9, 9], at) == 0
        payments = await conn.fetch("SELECT kind, amount_fen, status FROM payments ORDER BY kind")
    assert [tuple(p) for p in payments] == [
        ("charge", 110600, "succeeded"),
        ("refund", 105100, "succeeded"),
    ]
    api.clock.now_ms = t0 + 61_000
    await engine.cancel("acct-A", h.hold_id)  # the seat goes back after the refund
    await drain(persister)
    got = [
        (r["state"], r["state_rank"], r["price_fen"], r["refund_fee_fen"], r["ended_at"])
        for r in (await tickets(api)).values()
    ]
    assert got == [("refunded", 4, 55300, 2750, from_ms(t0 + 60_000))] * 2


def priced(row: dict[str, Any], price_fen: int) -> TicketRow:
    fields = {f.name for f in dataclasses.fields(TicketRow)}
    return TicketRow(**{**{k: v for k, v in row.items() if k in fields}, "price_fen": price_fen})


async def test_the_sweeper_expires_due_seat_holds_next_to_slot_holds(
    api: Api, engine: SeatEngine
) -> None:
    t0 = api.clock.now_ms
    due = await engine.hold("acct-A", "G1-20261201", "second", 0, 4, [P1, P2], idempotency_key="1")
    slot_hold = await life(api, confirm=False, cancel=False)  # deadline t0 + 600 s
    api.clock.now_ms = t0 + 60_000
    later = await engine.hold("acct-B", "G1-20261201", "second", 0, 4, [P3], idempotency_key="2")
    sweeper = Sweeper(services=api.services, shards=[0])

    api.clock.now_ms = t0 + HOLD_MS - 1
    assert await sweeper.run_once() == 1  # the slot hold only: the seat hold is not due
    assert (await engine.get_hold(due.hold_id)).state == "held"  # type: ignore[union-attr]

    api.clock.now_ms = t0 + HOLD_MS
    assert await sweeper.run_once() == 1
    assert await sweeper.run_once() == 0  # nothing left that is due
    assert (await engine.get_hold(due.hold_id)).state == "expired"  # type: ignore[union-attr]
    assert (await engine.get_hold(later.hold_id)).state == "held"  # type: ignore[union-attr]
    remaining = await engine.remaining("G1-20261201", "second")
    assert remaining[0, 4] == 10 - 1  # the two seats are back; `later` keeps its one
    assert metric_expired(api) == 2.0

    await drain(make_persister(api))
    rows = await tickets(api)
    assert {tid: (r["state"], r["ended_at"], r["end_reason"]) for tid, r in rows.items()} == {
        f"{due.hold_id}.1": ("expired", from_ms(t0 + HOLD_MS), "expired"),
        f"{due.hold_id}.2": ("expired", from_ms(t0 + HOLD_MS), "expired"),
        f"{later.hold_id}.1": ("held", None, None),
    }
    assert (await bookings(api))[slot_hold.hold_id]["state"] == "expired"


def metric_expired(api: Api) -> float | None:
    return api.services.metrics.registry.get_sample_value("fairseat_holds_expired_total")
