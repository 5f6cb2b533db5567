"""Bookings and inventory events in Postgres. Every write is an idempotent upsert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reservation.domain.bookings import BookingRow, EventRow
from reservation.domain.clock import from_ms

# The WHERE clause keeps states moving forward only (see domain.bookings).
UPSERT_BOOKING = """
INSERT INTO bookings (id, slot_id, account_id, person_hmac, state, state_rank,
                      idempotency_key, held_at, deadline, confirmed_at, ended_at, end_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO UPDATE SET
    state = EXCLUDED.state,
    state_rank = EXCLUDED.state_rank,
    confirmed_at = COALESCE(bookings.confirmed_at, EXCLUDED.confirmed_at),
    ended_at = COALESCE(bookings.ended_at, EXCLUDED.ended_at),
    end_reason = COALESCE(bookings.end_reason, EXCLUDED.end_reason),
    updated_at = now()
WHERE bookings.state_rank < EXCLUDED.state_rank
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


async def upsert_bookings(conn: Any, rows: Sequence[BookingRow]) -> None:
    if rows:
        await conn.executemany(UPSERT_BOOKING, [_booking_args(r) for r in rows])


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
