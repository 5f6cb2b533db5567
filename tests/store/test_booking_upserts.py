"""Booking and ticket upserts as one statement per batch (rows as arrays), on real Postgres.

The statement cannot upsert an id twice, so a batch with repeats runs in rounds
(``distinct_rounds``); the result must be what writing the rows one by one gives. The
request path's fenced upsert checks every row's epoch once, before writing anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservation.domain.bookings import BookingRow, TicketRow, ticket_id
from reservation.store.bookings import (
    distinct_rounds,
    upsert_bookings,
    upsert_bookings_fenced,
    upsert_tickets,
)
from reservation.store.db import is_fenced_out
from reservation.workflows.epoch_fence import write_epoch
from tests.api_fixture import Api
from tests.durability.test_rebuild import guarded
from tests.helpers import register

__all__ = ["guarded"]  # the fixture, used by name


@given(st.lists(st.sampled_from("abcde"), max_size=30))
def test_rounds_hold_each_id_once_and_every_position_once_in_order(ids: list[str]) -> None:
    rounds = distinct_rounds(ids)
    assert sorted(p for r in rounds for p in r) == list(range(len(ids)))
    for k, positions in enumerate(rounds):
        assert positions == sorted(positions) and positions  # in order, never empty
        assert len({ids[p] for p in positions}) == len(positions)  # no id twice
        # each position is its id's k-th occurrence
        assert all(ids[:p].count(ids[p]) == k for p in positions)


T0 = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


def row(booking_id: str, slot_id: str, account_id: str, state: str, minute: int) -> BookingRow:
    at = T0 + dt.timedelta(minutes=minute)
    return BookingRow(
        id=booking_id,
        slot_id=slot_id,
        account_id=account_id,
        person_hmac="p-" + account_id,
        state=state,
        idempotency_key="",
        held_at=T0,
        deadline=T0 + dt.timedelta(minutes=15),
        confirmed_at=at if state == "confirmed" else None,
        ended_at=at if state in ("cancelled", "expired") else None,
        end_reason=state if state in ("cancelled", "expired") else None,
    )


async def slot_and_account(api: Api) -> tuple[str, str]:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=5)])
    citizen = await register(api.client)
    return str(slot["id"]), str(citizen["account_id"])


async def written(api: Api, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, state, state_rank, confirmed_at, ended_at, end_reason"
            " FROM bookings WHERE id = ANY($1::text[])",
            ids,
        )
    return {r["id"]: tuple(r)[1:] for r in rows}


# Each booking's events in the order a batch may carry them, replays and late ones too.
HISTORIES = {
    "paid-then-cancelled": ["held", "confirmed", "cancelled"],
    "cancel-first": ["cancelled", "held", "confirmed"],
    "replayed": ["held", "held", "confirmed", "confirmed"],
    "expired": ["held", "expired", "cancelled"],
}


async def test_a_batch_with_repeated_ids_ends_as_row_by_row_writing(api: Api) -> None:
    slot_id, account_id = await slot_and_account(api)
    batch = [
        row("batch-" + name, slot_id, account_id, state, minute)
        for name, states in HISTORIES.items()
        for minute, state in enumerate(states)
    ]
    async with api.services.pool.acquire() as conn:
        async with conn.transaction():
            await upsert_bookings(conn, batch)
        for name, states in HISTORIES.items():
            for minute, state in enumerate(states):
                await upsert_bookings(
                    conn, [row("one-" + name, slot_id, account_id, state, minute)]
                )
    together = await written(api, ["batch-" + n for n in HISTORIES])
    one_by_one = await written(api, ["one-" + n for n in HISTORIES])
    assert {k.removeprefix("batch-"): v for k, v in together.items()} == {
        k.removeprefix("one-"): v for k, v in one_by_one.items()
    }
    assert together["batch-paid-then-cancelled"][:2] == ("cancelled", 3)
    assert together["batch-paid-then-cancelled"][2] == T0 + dt.timedelta(minutes=1)


async def test_the_fenced_upsert_writes_a_repeated_confirm_once(guarded: Api) -> None:
    slot_id, account_id = await slot_and_account(guarded)
    epoch = await write_epoch(guarded.services)
    confirmed = row("twice", slot_id, account_id, "confirmed", 3)
    other = row("once", slot_id, account_id, "confirmed", 4)
    async with guarded.services.pool.acquire() as conn:
        await upsert_bookings_fenced(
            conn,
            [(confirmed, epoch), (other, epoch), (confirmed, epoch)],
            prefix=guarded.services.keys.prefix,
        )
    assert await written(guarded, ["twice", "once"]) == {
        "twice": ("confirmed", 2, T0 + dt.timedelta(minutes=3), None, None),
        "once": ("confirmed", 2, T0 + dt.timedelta(minutes=4), None, None),
    }


async def test_one_stale_epoch_refuses_the_whole_fenced_batch(guarded: Api) -> None:
    slot_id, account_id = await slot_and_account(guarded)
    epoch = await write_epoch(guarded.services)
    stale = str(int(epoch) - 1)
    batch = [
        (row("fresh", slot_id, account_id, "confirmed", 1), epoch),
        (row("stale", slot_id, account_id, "confirmed", 2), stale),
    ]
    async with guarded.services.pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError) as refused:
            await upsert_bookings_fenced(conn, batch, prefix=guarded.services.keys.prefix)
    assert is_fenced_out(refused.value)
    assert await written(guarded, ["fresh", "stale"]) == {}


def ticket(hold_id: str, n: int = 1) -> TicketRow:
    return TicketRow(
        id=ticket_id(hold_id, n),
        hold_id=hold_id,
        passenger_no=n,
        run_id="G1-20261207",
        seat_class="second",
        coach="01",
        seat=f"0{n}A",
        position="window",
        seg_from=0,
        seg_to=4,
        person_hmac=f"p-{hold_id}-{n}",
        account_id="a-race",
        state="held",
        verification_code=None,
        change_of=None,
        changed_to=None,
        held_at=T0,
        deadline=T0 + dt.timedelta(minutes=30),
        confirmed_at=None,
        ended_at=None,
        end_reason=None,
    )


async def test_two_writers_of_one_new_ticket_never_collide(api: Api) -> None:
    """The order's request path and the persister (from the seat event) write the same new
    ticket rows at the same moment. Both must end in one row; neither may fail (it was a
    500 on POST /v1/orders: a second unique key, beside the upsert's own, raced)."""
    pool = api.services.pool
    async with pool.acquire() as first, pool.acquire() as second:

        async def write(conn: Any, rows: list[TicketRow]) -> None:
            async with conn.transaction():
                await upsert_tickets(conn, rows)

        for k in range(300):
            rows = [ticket(f"race-{k}", n) for n in (1, 2)]
            await asyncio.gather(write(first, rows), write(second, rows))
        count = await first.fetchval("SELECT count(*) FROM tickets WHERE hold_id LIKE 'race-%'")
    assert count == 600
