"""Bookings, train tickets and inventory events in Postgres. Every write is an idempotent
upsert."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from reservation.domain.bookings import BookingRow, EventRow, TicketRow
from reservation.domain.clock import from_ms

# The WHERE clause keeps states moving forward only (see domain.bookings).
_BOOKING_CONFLICT = """
ON CONFLICT (id) DO UPDATE SET
    state = EXCLUDED.state,
    state_rank = EXCLUDED.state_rank,
    confirmed_at = COALESCE(bookings.confirmed_at, EXCLUDED.confirmed_at),
    ended_at = COALESCE(bookings.ended_at, EXCLUDED.ended_at),
    end_reason = COALESCE(bookings.end_reason, EXCLUDED.end_reason),
    updated_at = now()
WHERE bookings.state_rank < EXCLUDED.state_rank
"""

# --- speed (issue 7): one statement per batch, its rows as arrays (unnest), not one
# execution per row (executemany): Postgres binds, starts and ends one execution for the
# batch; 30-40 % less Postgres CPU per row (docs/load-testing.md, session 9). One
# statement cannot upsert an id twice (ON CONFLICT DO UPDATE refuses to touch a row
# twice), so the callers below split repeated ids into rounds.
UPSERT_BOOKINGS = f"""
INSERT INTO bookings (id, slot_id, account_id, person_hmac, state, state_rank,
                      idempotency_key, held_at, deadline, confirmed_at, ended_at, end_reason)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::smallint[], $7::text[], $8::timestamptz[], $9::timestamptz[],
                     $10::timestamptz[], $11::timestamptz[], $12::text[])
{_BOOKING_CONFLICT}"""

# The request path's confirm: the same upsert, committed only if the inventory's epoch is
# still every one of $14 (store.inventory_state.fence; raises FS001 otherwise). The fence
# is an uncorrelated sub-select, so Postgres runs it once per statement (an InitPlan),
# before the first row is written, and the group commit needs no BEGIN/COMMIT of its own.
UPSERT_BOOKINGS_FENCED = UPSERT_BOOKINGS.replace(
    "$12::text[])\n",
    "$12::text[])\n"
    "WHERE (SELECT bool_and(inventory_fence($13::text, e)) FROM unnest($14::text[]) AS e)\n",
)
assert UPSERT_BOOKINGS_FENCED != UPSERT_BOOKINGS

# States only move forward (domain.bookings.TICKET_STATE_RANK); times, codes and change
# links are filled once and then kept, so a row written from a later event first still gets
# the earlier event's facts when that one is replayed. Rows as arrays, like UPSERT_BOOKINGS.
UPSERT_TICKETS = """
INSERT INTO tickets (id, hold_id, passenger_no, run_id, seat_class, coach, seat, position,
                     seg_from, seg_to, person_hmac, account_id, state, state_rank,
                     verification_code, change_of, changed_to, held_at, deadline,
                     confirmed_at, ended_at, end_reason, price_fen)
SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::text[], $9::smallint[], $10::smallint[],
                     $11::text[], $12::text[], $13::text[], $14::smallint[], $15::text[],
                     $16::text[], $17::text[], $18::timestamptz[], $19::timestamptz[],
                     $20::timestamptz[], $21::timestamptz[], $22::text[], $23::integer[])
ON CONFLICT (id) DO UPDATE SET
    state = CASE WHEN tickets.state_rank < EXCLUDED.state_rank
                 THEN EXCLUDED.state ELSE tickets.state END,
    state_rank = GREATEST(tickets.state_rank, EXCLUDED.state_rank),
    verification_code = COALESCE(tickets.verification_code, EXCLUDED.verification_code),
    change_of = COALESCE(tickets.change_of, EXCLUDED.change_of),
    changed_to = COALESCE(tickets.changed_to, EXCLUDED.changed_to),
    held_at = COALESCE(tickets.held_at, EXCLUDED.held_at),
    deadline = COALESCE(tickets.deadline, EXCLUDED.deadline),
    confirmed_at = COALESCE(tickets.confirmed_at, EXCLUDED.confirmed_at),
    ended_at = COALESCE(tickets.ended_at, EXCLUDED.ended_at),
    end_reason = COALESCE(tickets.end_reason, EXCLUDED.end_reason),
    price_fen = COALESCE(tickets.price_fen, EXCLUDED.price_fen),
    updated_at = now()
WHERE tickets.state_rank < EXCLUDED.state_rank
   OR (tickets.held_at IS NULL AND EXCLUDED.held_at IS NOT NULL)
   OR (tickets.confirmed_at IS NULL AND EXCLUDED.confirmed_at IS NOT NULL)
   OR (tickets.ended_at IS NULL AND EXCLUDED.ended_at IS NOT NULL)
   OR (tickets.price_fen IS NULL AND EXCLUDED.price_fen IS NOT NULL)
"""

INSERT_EVENTS = """
INSERT INTO inventory_events (event_id, hold_id, type, at, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[])
ON CONFLICT (event_id) DO NOTHING
"""


def _booking_args(row: BookingRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.slot_id,
        row.account_id,
        row.person_hmac,
        row.state,
        row.state_rank,
        row.idempotency_key,
        row.held_at,
        row.deadline,
        row.confirmed_at,
        row.ended_at,
        row.end_reason,
    )


def _columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as the statement's arrays: one list per column."""
    return [list(column) for column in zip(*rows, strict=True)]


def distinct_rounds(ids: Sequence[str]) -> list[list[int]]:
    """Positions of ``ids`` in rounds where no id repeats, in order: round k holds each
    id's k-th occurrence. Writing the rounds one after the other gives what writing the
    rows one by one gives, with one statement per round (usually one in all)."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    for position, row_id in enumerate(ids):
        k = seen.get(row_id, 0)
        seen[row_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(position)
    return rounds


async def _upsert_in_rounds(
    conn: Any, statement: str, ids: Sequence[str], args: Sequence[tuple[Any, ...]]
) -> None:
    """``statement`` (rows as arrays) once per round of :func:`distinct_rounds`. Atomic
    only inside the caller's transaction when an id repeats (more than one statement)."""
    for positions in distinct_rounds(ids):
        await conn.execute(statement, *_columns(args[i] for i in positions))


async def upsert_bookings(conn: Any, rows: Sequence[BookingRow]) -> None:
    """Upsert in order; an id may repeat."""
    await _upsert_in_rounds(
        conn, UPSERT_BOOKINGS, [r.id for r in rows], [_booking_args(r) for r in rows]
    )


FencedBooking = tuple[BookingRow, str]
"""A row and the epoch its Redis change was made under (see ``inventory_state.fence``)."""


async def upsert_bookings_fenced(conn: Any, rows: Sequence[FencedBooking], *, prefix: str) -> None:
    """``upsert_bookings`` in one statement, atomic by itself, all or none, and only if the
    inventory's epoch is still each row's own.

    A repeated id (a confirm retried while its first try waits in the same batch) is
    written once: every row the request path sends is ``confirmed``, and a second upsert
    of an equal rank changes nothing (the ranked WHERE), so the first row is the result.
    Its epoch is still checked."""
    if not rows:
        return
    first: dict[str, BookingRow] = {}
    for row, _epoch in rows:
        first.setdefault(row.id, row)
    epochs = sorted({epoch for _row, epoch in rows})
    await conn.execute(
        UPSERT_BOOKINGS_FENCED, *_columns(map(_booking_args, first.values())), prefix, epochs
    )


def _ticket_args(row: TicketRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.hold_id,
        row.passenger_no,
        row.run_id,
        row.seat_class,
        row.coach,
        row.seat,
        row.position,
        row.seg_from,
        row.seg_to,
        row.person_hmac,
        row.account_id,
        row.state,
        row.state_rank,
        row.verification_code,
        row.change_of,
        row.changed_to,
        row.held_at,
        row.deadline,
        row.confirmed_at,
        row.ended_at,
        row.end_reason,
        row.price_fen,
    )


async def upsert_tickets(conn: Any, rows: Sequence[TicketRow]) -> None:
    """Upsert in order; an id may repeat."""
    await _upsert_in_rounds(
        conn, UPSERT_TICKETS, [r.id for r in rows], [_ticket_args(r) for r in rows]
    )


async def mark_refunded(
    conn: Any, hold_id: str, fees_fen: Sequence[int | None], at: dt.datetime
) -> int:
    """Record a refund of a hold's tickets (fee per passenger, in order; None leaves that
    passenger's ticket alone: a refund of some tickets of a party) once the money went
    back; forward-only like every ticket write, so a repeat changes nothing. The seat's
    ``cancelled`` event may be persisted before or after: it never undoes ``refunded``.
    Returns how many tickets changed now."""
    status: str = await conn.execute(
        """UPDATE tickets t SET state = 'refunded', state_rank = 4,
                  refund_fee_fen = f.fee, ended_at = COALESCE(t.ended_at, $3),
                  end_reason = COALESCE(t.end_reason, 'refunded'), updated_at = now()
           FROM unnest($2::integer[]) WITH ORDINALITY AS f(fee, n)
           WHERE t.hold_id = $1 AND t.passenger_no = f.n AND f.fee IS NOT NULL
             AND t.state_rank < 4""",
        hold_id,
        list(fees_fen),
        at,
    )
    return int(status.split()[-1])


INSERT_PAYMENT = """
INSERT INTO payments (id, order_id, kind, amount_fen, provider, status, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
"""
# No conflict target: the provider's id is a unique key too. Two requests recording the
# same answer at once (a retry racing its original) conflict on whichever index is checked
# first, and with a target only that one is tolerated: the other raised (a 500).


async def record_payment(
    conn: Any,
    *,
    payment_id: str,
    order_id: str,
    kind: str,
    amount_fen: int,
    provider: str,
    status: str,
    idempotency_key: str,
) -> bool:
    """Keep a provider's final answer; a retry with the same key records nothing new.
    True if recorded now."""
    done: str = await conn.execute(
        INSERT_PAYMENT, payment_id, order_id, kind, amount_fen, provider, status, idempotency_key
    )
    return done.endswith(" 1")


async def tickets_of_hold(conn: Any, hold_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM tickets WHERE hold_id = $1 ORDER BY passenger_no", hold_id
    )
    return [dict(r) for r in rows]


async def live_tickets_of_people(conn: Any, person_hmacs: Sequence[str]) -> list[dict[str, Any]]:
    """Held or confirmed tickets of these passengers (by ID HMAC), any account: the input
    of the overlapping-trip rule (times come from the timetable by run and segments)."""
    rows = await conn.fetch(
        """SELECT person_hmac, run_id, seg_from, seg_to, hold_id FROM tickets
           WHERE person_hmac = ANY($1::text[]) AND state IN ('held', 'confirmed')""",
        list(person_hmacs),
    )
    return [dict(r) for r in rows]


async def unpaid_cancellation_times(
    conn: Any, account_id: str, since: dt.datetime
) -> list[dt.datetime]:
    """When the account cancelled unpaid seat holds since ``since`` (one per hold, however
    many passengers it had; a 改签 hold given back by the system does not count): the input
    of the "cancellations a day" rule."""
    rows = await conn.fetch(
        """SELECT min(ended_at) AS at FROM tickets
           WHERE account_id = $1 AND state = 'cancelled' AND confirmed_at IS NULL
             AND change_of IS NULL AND ended_at >= $2
           GROUP BY hold_id ORDER BY 1""",
        account_id,
        since,
    )
    return [r["at"] for r in rows]


async def insert_events(conn: Any, events: Sequence[EventRow]) -> None:
    if events:
        await conn.execute(
            INSERT_EVENTS,
            [e.event_id for e in events],
            [e.hold_id for e in events],
            [e.type for e in events],
            [e.at for e in events],
            [e.payload for e in events],
        )


async def get_booking(conn: Any, booking_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT b.*, s.provider_id, s.resource_id, s.starts_at, s.ends_at, s.day,
                  r.name AS resource_name
           FROM bookings b JOIN slots s ON s.id = b.slot_id
           JOIN resources r ON r.id = s.resource_id WHERE b.id = $1""",
        booking_id,
    )
    return dict(row) if row is not None else None


async def list_for_account(conn: Any, account_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT b.*, s.provider_id, s.resource_id, s.starts_at, s.ends_at, s.day,
                  r.name AS resource_name
           FROM bookings b JOIN slots s ON s.id = b.slot_id
           JOIN resources r ON r.id = s.resource_id
           WHERE b.account_id = $1 ORDER BY b.held_at DESC LIMIT $2""",
        account_id,
        limit,
    )
    return [dict(r) for r in rows]


async def list_for_slot_day(conn: Any, provider_id: str, day: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT b.id, b.slot_id, b.state, b.held_at, b.confirmed_at, a.name, a.id_masked,
                  s.starts_at, s.resource_id
           FROM bookings b JOIN slots s ON s.id = b.slot_id
           JOIN accounts a ON a.id = b.account_id
           WHERE s.provider_id = $1 AND s.day = $2 ORDER BY s.starts_at, b.held_at""",
        provider_id,
        day,
    )
    return [dict(r) for r in rows]


async def booking_from_live_parts(conn: Any, live: Any) -> dict[str, Any] | None:
    """A booking not yet written by the persister: its live hold plus its slot's row."""
    slot = await conn.fetchrow(
        """SELECT s.provider_id, s.resource_id, s.starts_at, s.ends_at, s.day,
                  r.name AS resource_name
           FROM slots s JOIN resources r ON r.id = s.resource_id WHERE s.id = $1""",
        live.slot_id,
    )
    if slot is None:
        return None
    return {
        **dict(slot),
        "id": live.hold_id,
        "slot_id": live.slot_id,
        "account_id": live.account_id,
        "state": live.state,
        "held_at": from_ms(live.held_ms),
        "deadline": from_ms(live.deadline_ms),
        "confirmed_at": None,
        "ended_at": None,
    }
