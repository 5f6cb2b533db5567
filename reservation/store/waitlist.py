"""Postgres: waitlist orders, their ranked choices, and handoff flags (0009_waitlist.sql)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ChoiceRow:
    rank: int
    unit: str
    shard: int
    run_id: str | None = None
    seat_class: str | None = None
    seg_from: int | None = None
    seg_to: int | None = None
    resource_id: str | None = None
    day: dt.date | None = None


async def order_by_key(conn: Any, account_id: str, idempotency_key: str) -> dict[str, Any] | None:
    """The account's order filed with this idempotency key, if any (a retry finds it)."""
    row = await conn.fetchrow(
        "SELECT * FROM waitlist_orders WHERE account_id = $1 AND idempotency_key = $2",
        account_id,
        idempotency_key,
    )
    return dict(row) if row is not None else None


async def insert_order(
    conn: Any,
    *,
    order_id: str,
    account_id: str,
    kind: str,
    filed_at: dt.datetime,
    deadline: dt.datetime,
    people: Sequence[str],
    passenger_ids: Sequence[str],
    request: dict[str, Any],
    idempotency_key: str,
    choices: Sequence[ChoiceRow],
) -> tuple[dict[str, Any], bool]:
    """Insert an order and its choices; (the row, created). A retry with the same key finds
    the first order (created False)."""
    row = await conn.fetchrow(
        "INSERT INTO waitlist_orders (id, account_id, kind, filed_at, deadline, people,"
        " passenger_ids, request, idempotency_key)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)"
        " ON CONFLICT (account_id, idempotency_key) DO NOTHING RETURNING *",
        order_id,
        account_id,
        kind,
        filed_at,
        deadline,
        list(people),
        list(passenger_ids),
        json.dumps(request),
        idempotency_key,
    )
    if row is None:
        existing = await order_by_key(conn, account_id, idempotency_key)
        assert existing is not None  # the conflict was with it
        return existing, False
    await conn.executemany(
        "INSERT INTO waitlist_choices (order_id, rank, unit, shard, run_id, seat_class,"
        " seg_from, seg_to, resource_id, day) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            (
                order_id,
                c.rank,
                c.unit,
                c.shard,
                c.run_id,
                c.seat_class,
                c.seg_from,
                c.seg_to,
                c.resource_id,
                c.day,
            )
            for c in choices
        ],
    )
    return dict(row), True


async def get_order(conn: Any, order_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM waitlist_orders WHERE id = $1" + (" FOR UPDATE" if lock else ""), order_id
    )
    return dict(row) if row is not None else None


async def choices_of(conn: Any, order_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM waitlist_choices WHERE order_id = $1 ORDER BY rank", order_id
    )
    return [dict(r) for r in rows]


async def orders_of(conn: Any, account_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM waitlist_orders WHERE account_id = $1 ORDER BY seq DESC LIMIT $2",
        account_id,
        limit,
    )
    return [dict(r) for r in rows]


async def positions(conn: Any, order_id: str) -> dict[int, int]:
    """rank -> the order's place in line on that choice's unit (1 = next served)."""
    rows = await conn.fetch(
        """SELECT c.rank, 1 + (
               SELECT count(*) FROM waitlist_choices c2
               JOIN waitlist_orders o2 ON o2.id = c2.order_id
               WHERE c2.unit = c.unit AND o2.state = 'waiting' AND o2.seq < o.seq
           ) AS position
           FROM waitlist_choices c JOIN waitlist_orders o ON o.id = c.order_id
           WHERE c.order_id = $1 ORDER BY c.rank""",
        order_id,
    )
    return {int(r["rank"]): int(r["position"]) for r in rows}


async def waiting_on_unit(conn: Any, unit: str, limit: int = 200) -> list[dict[str, Any]]:
    """The orders waiting on a unit, in line (filing order), with that unit's choice."""
    rows = await conn.fetch(
        """SELECT o.id, o.seq, o.account_id, o.kind, o.people, o.passenger_ids, o.deadline,
                  c.rank, c.unit, c.run_id, c.seat_class, c.seg_from, c.seg_to,
                  c.resource_id, c.day
           FROM waitlist_choices c JOIN waitlist_orders o ON o.id = c.order_id
           WHERE c.unit = $1 AND o.state = 'waiting'
           ORDER BY o.seq LIMIT $2""",
        unit,
        limit,
    )
    return [dict(r) for r in rows]


async def waited_units(conn: Any, limit: int = 500) -> list[str]:
    """Units some waiting order waits on (the filler looks for stock on sale there)."""
    rows = await conn.fetch(
        """SELECT DISTINCT c.unit FROM waitlist_choices c
           JOIN waitlist_orders o ON o.id = c.order_id
           WHERE o.state = 'waiting' LIMIT $1""",
        limit,
    )
    return [str(r["unit"]) for r in rows]


async def set_offer(conn: Any, order_id: str, hold_id: str | None, rank: int | None) -> None:
    await conn.execute(
        "UPDATE waitlist_orders SET offer_hold_id = $2, offer_rank = $3"
        " WHERE id = $1 AND state = 'waiting'",
        order_id,
        hold_id,
        rank,
    )


async def offered(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM waitlist_orders WHERE state = 'waiting' AND offer_hold_id IS NOT NULL"
    )
    return [dict(r) for r in rows]


async def mark_fulfilled(
    conn: Any, order_id: str, hold_id: str, rank: int, at: dt.datetime
) -> bool:
    result: str = await conn.execute(
        "UPDATE waitlist_orders SET state = 'fulfilled', hold_id = $2, fulfilled_rank = $3,"
        " ended_at = $4, offer_hold_id = NULL, offer_rank = NULL"
        " WHERE id = $1 AND state = 'waiting'",
        order_id,
        hold_id,
        rank,
        at,
    )
    return result.endswith(" 1")


async def mark_ended(conn: Any, order_id: str, state: str, reason: str, at: dt.datetime) -> bool:
    """waiting -> cancelled | ended; False if it was not waiting any more."""
    result: str = await conn.execute(
        "UPDATE waitlist_orders SET state = $2, end_reason = $3, ended_at = $4"
        " WHERE id = $1 AND state = 'waiting'",
        order_id,
        state,
        reason,
        at,
    )
    return result.endswith(" 1")


async def due(conn: Any, now: dt.datetime, limit: int = 200) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM waitlist_orders WHERE state = 'waiting' AND deadline <= $1"
        " ORDER BY deadline LIMIT $2",
        now,
        limit,
    )
    return [dict(r) for r in rows]


# Handoff flags -----------------------------------------------------------------------
_FLAG_COLUMNS = (
    "kind, object, cancelled_id, cancelled_account, cancelled_person, cancelled_at,"
    " booked_id, booked_account, booked_person, booked_at, gap_ms, flagged_at"
)


async def flag_slot_rebooks(
    conn: Any, since: dt.datetime, window: dt.timedelta, now: dt.datetime
) -> list[dict[str, Any]]:
    """Slot places cancelled by one person and held by another within ``window``
    (waitlist allocations excepted: they follow the line, not a handoff)."""
    rows = await conn.fetch(
        f"""INSERT INTO handoff_flags ({_FLAG_COLUMNS})
            SELECT 'slot', c.slot_id, c.id, c.account_id, c.person_hmac, c.ended_at,
                   b.id, b.account_id, b.person_hmac, b.held_at,
                   (extract(epoch FROM b.held_at - c.ended_at) * 1000)::bigint, $4
            FROM bookings c JOIN bookings b ON b.slot_id = c.slot_id
            WHERE c.state = 'cancelled' AND c.ended_at >= $1
              AND b.person_hmac <> c.person_hmac
              AND b.held_at >= c.ended_at AND b.held_at <= c.ended_at + $2::interval
              AND NOT EXISTS (SELECT 1 FROM waitlist_orders w WHERE w.hold_id = b.id)
            ORDER BY c.ended_at LIMIT $3
            ON CONFLICT (cancelled_id, booked_id) DO NOTHING
            RETURNING *""",
        since,
        window,
        1000,
        now,
    )
    return [dict(r) for r in rows]


async def flag_seat_rebooks(
    conn: Any, since: dt.datetime, window: dt.timedelta, now: dt.datetime
) -> list[dict[str, Any]]:
    """The same seat on overlapping segments, given up (cancelled, refunded, changed) by
    one person and held by another within ``window``."""
    rows = await conn.fetch(
        f"""INSERT INTO handoff_flags ({_FLAG_COLUMNS})
            SELECT 'seat', c.run_id || '/' || c.seat_class || '/' || c.coach || '/' || c.seat,
                   c.id, c.account_id, c.person_hmac, c.ended_at,
                   b.id, b.account_id, b.person_hmac, b.held_at,
                   (extract(epoch FROM b.held_at - c.ended_at) * 1000)::bigint, $4
            FROM tickets c JOIN tickets b
              ON b.run_id = c.run_id AND b.seat_class = c.seat_class
             AND b.coach = c.coach AND b.seat = c.seat
             AND b.seg_from < c.seg_to AND c.seg_from < b.seg_to
            WHERE c.state IN ('cancelled', 'refunded', 'changed') AND c.ended_at >= $1
              AND b.person_hmac <> c.person_hmac
              AND b.held_at >= c.ended_at AND b.held_at <= c.ended_at + $2::interval
              AND NOT EXISTS (SELECT 1 FROM waitlist_orders w WHERE w.hold_id = b.hold_id)
            ORDER BY c.ended_at LIMIT $3
            ON CONFLICT (cancelled_id, booked_id) DO NOTHING
            RETURNING *""",
        since,
        window,
        1000,
        now,
    )
    return [dict(r) for r in rows]


async def list_flags(conn: Any, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM handoff_flags ORDER BY flagged_at DESC, id DESC LIMIT $1", limit
    )
    return [dict(r) for r in rows]
