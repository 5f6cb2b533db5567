"""Postgres queries for rebuilding and reconciling the live inventory (issue 4).

The epoch row says which rebuild the Redis markers must carry and whether sales are open;
the slot and booking queries give what the live inventory must hold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

_LOCK_NAMESPACE = "fairseat-inventory-rebuild:"


async def get_epoch(conn: Any, prefix: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM inventory_epochs WHERE key_prefix = $1", prefix)
    return dict(row) if row is not None else None


async def lock_rebuild(conn: Any, prefix: str) -> None:
    """Session advisory lock: one rebuild of a prefix at a time (held until unlocked)."""
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", _LOCK_NAMESPACE + prefix)


async def unlock_rebuild(conn: Any, prefix: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", _LOCK_NAMESPACE + prefix)


async def begin_rebuild(conn: Any, prefix: str) -> int:
    """Close sales under a new epoch number; returns it. Waits for the fenced commits in
    flight (``fence``) and makes later ones fail: the rebuild reads Postgres after this."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(inventory_epoch_lock_key($1))", prefix)
        epoch: int = await conn.fetchval(
            """INSERT INTO inventory_epochs (key_prefix, epoch, open, reason)
               VALUES ($1, 1, false, 'rebuilding')
               ON CONFLICT (key_prefix) DO UPDATE
               SET epoch = inventory_epochs.epoch + 1, open = false, reason = 'rebuilding',
                   changed_at = now()
               RETURNING epoch""",
            prefix,
        )
    return epoch


async def fence(conn: Any, prefix: str, epoch: str) -> None:
    """Inside a transaction: commit only if the inventory's epoch is still ``epoch`` (the
    one the Redis change was made under; '' for none). Raises asyncpg's error with
    SQLSTATE ``FS001`` otherwise (``db.is_transient``: 503, and the retry runs against the
    rebuilt Redis). See migration 0014."""
    if epoch:
        await conn.execute("SELECT inventory_fence($1, $2)", prefix, epoch)


async def finish_rebuild(conn: Any, prefix: str, epoch: int, run_ids: Sequence[str]) -> bool:
    """Open sales under ``epoch``; False if another rebuild bumped it meanwhile."""
    done: str = await conn.execute(
        """UPDATE inventory_epochs
           SET open = true, reason = '', redis_run_ids = $3, rebuilt_at = now(),
               changed_at = now()
           WHERE key_prefix = $1 AND epoch = $2""",
        prefix,
        epoch,
        list(run_ids),
    )
    return done == "UPDATE 1"


async def close_sales(conn: Any, prefix: str, epoch: int, reason: str) -> bool:
    """Close sales of ``epoch`` (a Redis restart was seen); False if already closed."""
    done: str = await conn.execute(
        """UPDATE inventory_epochs SET open = false, reason = $3, changed_at = now()
           WHERE key_prefix = $1 AND epoch = $2 AND open""",
        prefix,
        epoch,
        reason,
    )
    return done == "UPDATE 1"


async def retained_slots(conn: Any, ends_after: dt.datetime) -> list[dict[str, Any]]:
    """Slots whose live keys are still kept (they end after ``ends_after``)."""
    rows = await conn.fetch(
        """SELECT id, resource_id, day, capacity, release_at, starts_at, ends_at, status
           FROM slots WHERE ends_at > $1 ORDER BY resource_id, day, starts_at""",
        ends_after,
    )
    return [dict(r) for r in rows]


async def bookings_of_slots(conn: Any, slot_ids: Sequence[str]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, slot_id, account_id, person_hmac, state, idempotency_key, held_at,
                  deadline, confirmed_at, ended_at
           FROM bookings WHERE slot_id = ANY($1::text[]) ORDER BY held_at, id""",
        list(slot_ids),
    )
    return [dict(r) for r in rows]


async def expire_overdue_holds(conn: Any, now: dt.datetime, epoch: int) -> list[str]:
    """Holds still ``held`` in Postgres whose deadline passed: expired by the rebuild
    (they would have been by the sweeper), with an audit event each. Returns their ids."""
    rows = await conn.fetch(
        """WITH expired AS (
               UPDATE bookings
               SET state = 'expired', state_rank = 3, ended_at = $1,
                   end_reason = 'deadline (rebuild)', updated_at = now()
               WHERE state = 'held' AND deadline <= $1
               RETURNING id
           ), logged AS (
               INSERT INTO inventory_events (event_id, hold_id, type, at, payload)
               SELECT 'rebuild:' || $2::text || ':' || id, id, 'expired', $1,
                      jsonb_build_object('type', 'expired', 'hold', id,
                                         'reason', 'deadline (rebuild)', 'epoch', $2::text)
               FROM expired
               ON CONFLICT (event_id) DO NOTHING
           )
           SELECT id FROM expired""",
        now,
        str(epoch),
    )
    return [r["id"] for r in rows]


# --- train seats (issue 4 for seats) -----------------------------------------------------
async def published_runs_since(conn: Any, first_day: dt.date) -> list[dict[str, Any]]:
    """Runs whose seat map went to Redis once (or that have tickets, whatever their flag
    says) and that still matter (service date on or after ``first_day``): the seat maps a
    rebuild restores and reconcile compares."""
    rows = await conn.fetch(
        """SELECT id, train_number, service_date, status FROM train_runs r
           WHERE service_date >= $1 AND (seats_published_at IS NOT NULL
                 OR EXISTS (SELECT 1 FROM tickets t WHERE t.run_id = r.id))
           ORDER BY service_date, id""",
        first_day,
    )
    return [dict(r) for r in rows]


async def tickets_of_runs(conn: Any, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every ticket of these runs (all states), grouped by hold in passenger order."""
    rows = await conn.fetch(
        """SELECT id, hold_id, passenger_no, run_id, seat_class, coach, seat, seg_from, seg_to,
                  person_hmac, account_id, state, change_of, changed_to, held_at, deadline,
                  confirmed_at, ended_at
           FROM tickets WHERE run_id = ANY($1::text[]) ORDER BY hold_id, passenger_no""",
        list(run_ids),
    )
    return [dict(r) for r in rows]


async def runs_with_live_tickets(conn: Any, run_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        """SELECT DISTINCT run_id FROM tickets
           WHERE run_id = ANY($1::text[]) AND state IN ('held', 'confirmed')""",
        list(run_ids),
    )
    return {r["run_id"] for r in rows}
