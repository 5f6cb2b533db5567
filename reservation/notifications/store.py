"""Postgres side of notifications: set-based recording for batches, the inbox, the
notifier's work queue and reminders. Every statement handles a whole batch (arrays via
``unnest``), so a caller pays one round trip per batch, not one per row.

Payloads are passed as JSON text and cast in SQL, so these work on any asyncpg
connection, with or without the pool's jsonb codec.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reservation.notifications.messages import Note, Plan

RECORD_NOTES = """
INSERT INTO notifications (account_id, kind, subject, payload, dedupe_key, created_at)
SELECT u.account_id, u.kind, u.subject, u.payload::jsonb, u.dedupe_key, u.created_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
            $7::text[]) WITH ORDINALITY
     AS u(account_id, kind, subject, payload, dedupe_key, created_at, unless_paid, ord)
WHERE (u.unless_paid IS NULL
       OR NOT EXISTS (SELECT 1 FROM tickets t
                      WHERE t.hold_id = u.unless_paid AND t.confirmed_at IS NOT NULL))
  -- Tickets do not reference accounts (load tests sell to accounts Postgres never saw):
  -- nobody to tell, and a foreign-key error would fail the persister's whole batch.
  AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = u.account_id)
ORDER BY u.ord
ON CONFLICT (dedupe_key) DO NOTHING
"""

# The day-before reminder of confirmed slot bookings: only when the appointment is further
# away than the lead (a booking for tomorrow morning needs no reminder of itself).
SCHEDULE_BOOKING_REMINDERS = """
INSERT INTO reminders (account_id, subject, remind_at, payload, dedupe_key)
SELECT b.account_id, 'booking:' || b.id, s.starts_at - $2::interval,
       jsonb_build_object('booking_id', b.id, 'slot_id', b.slot_id, 'resource', r.name,
                          'starts_at', s.starts_at),
       'booking:' || b.id || ':reminder'
FROM bookings b JOIN slots s ON s.id = b.slot_id JOIN resources r ON r.id = s.resource_id
WHERE b.id = ANY($1::text[]) AND b.state = 'confirmed'
  AND s.starts_at - $2::interval > COALESCE(b.confirmed_at, b.held_at)
ORDER BY b.id
ON CONFLICT (dedupe_key) DO NOTHING
"""

# Seat orders: the departure from the boarding station (run departure + stop offset).
SCHEDULE_ORDER_REMINDERS = """
INSERT INTO reminders (account_id, subject, remind_at, payload, dedupe_key)
SELECT t.account_id, 'order:' || t.hold_id, d.departs - $2::interval,
       jsonb_build_object('order_id', t.hold_id, 'run_id', t.run_id,
                          'station', st.station_code, 'departs_at', d.departs),
       'order:' || t.hold_id || ':reminder'
FROM (SELECT DISTINCT ON (hold_id) hold_id, account_id, run_id, seg_from, confirmed_at
      FROM tickets WHERE hold_id = ANY($1::text[]) AND state = 'confirmed'
      ORDER BY hold_id, passenger_no) t
JOIN train_runs r ON r.id = t.run_id
JOIN train_stops st ON st.train_number = r.train_number AND st.seq = t.seg_from
CROSS JOIN LATERAL (SELECT r.departs_at + make_interval(mins => st.depart_min) AS departs) d
WHERE st.depart_min IS NOT NULL AND d.departs - $2::interval > t.confirmed_at
ON CONFLICT (dedupe_key) DO NOTHING
"""

END_REMINDERS = """
UPDATE reminders r SET cancelled_at = u.at
FROM unnest($1::text[], $2::timestamptz[]) AS u(subject, at)
WHERE r.subject = u.subject AND r.fired_at IS NULL AND r.cancelled_at IS NULL
"""


async def record_notes(conn: Any, notes: Sequence[Note]) -> int:
    """Record notifications in order; a dedupe key seen before records nothing."""
    if not notes:
        return 0
    status: str = await conn.execute(
        RECORD_NOTES,
        [n.account_id for n in notes],
        [str(n.kind) for n in notes],
        [n.subject for n in notes],
        [json.dumps(n.payload, ensure_ascii=False) for n in notes],
        [n.dedupe_key for n in notes],
        [n.at for n in notes],
        [n.unless_paid_hold for n in notes],
    )
    return int(status.split()[-1])


async def apply_plan(conn: Any, plan: Plan, *, reminder_lead: dt.timedelta) -> int:
    """Record a batch's notifications and reminders inside the caller's transaction,
    after the rows they describe were written. Returns how many notifications are new."""
    if not plan:
        return 0
    recorded = await record_notes(conn, plan.notes)
    if plan.remind_bookings:
        await conn.execute(SCHEDULE_BOOKING_REMINDERS, plan.remind_bookings, reminder_lead)
    if plan.remind_orders:
        await conn.execute(SCHEDULE_ORDER_REMINDERS, plan.remind_orders, reminder_lead)
    if plan.end_subjects:
        # After scheduling: confirmed and cancelled in one batch leaves no live reminder.
        await conn.execute(
            END_REMINDERS,
            [s for s, _ in plan.end_subjects],
            [at for _, at in plan.end_subjects],
        )
    return recorded


# --- inbox -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    account_id: str
    kind: str
    subject: str
    payload: dict[str, Any]
    created_at: dt.datetime
    read_at: dt.datetime | None


_COLUMNS = "id, account_id, kind, subject, payload::text AS payload, created_at, read_at"


def _stored(row: Any) -> Stored:
    return Stored(
        id=row["id"],
        account_id=row["account_id"],
        kind=row["kind"],
        subject=row["subject"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        read_at=row["read_at"],
    )


async def inbox_page(
    conn: Any, account_id: str, *, before: int | None, limit: int, unread_only: bool = False
) -> tuple[list[Stored], int]:
    """Newest first, ids below ``before`` (keyset paging), and the unread count."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM notifications"
        " WHERE account_id = $1 AND ($2::bigint IS NULL OR id < $2)"
        " AND (NOT $4 OR read_at IS NULL) ORDER BY id DESC LIMIT $3",
        account_id,
        before,
        limit,
        unread_only,
    )
    unread = await conn.fetchval(
        "SELECT count(*) FROM notifications WHERE account_id = $1 AND read_at IS NULL",
        account_id,
    )
    return [_stored(r) for r in rows], int(unread)


async def mark_read(
    conn: Any, account_id: str, *, ids: Sequence[int], up_to: int | None, at: dt.datetime
) -> int:
    """Mark the account's own notifications read (others' ids are ignored: no oracle)."""
    status: str = await conn.execute(
        "UPDATE notifications SET read_at = $4 WHERE account_id = $1 AND read_at IS NULL"
        " AND (id = ANY($2::bigint[]) OR id <= $3)",
        account_id,
        list(ids),
        up_to if up_to is not None else 0,
        at,
    )
    return int(status.split()[-1])


async def since(conn: Any, account_id: str, after: int, limit: int) -> list[Stored]:
    """The account's notifications after id ``after``, oldest first (live page catch-up)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM notifications WHERE account_id = $1 AND id > $2"
        " ORDER BY id LIMIT $3",
        account_id,
        after,
        limit,
    )
    return [_stored(r) for r in rows]


async def latest_id(conn: Any, account_id: str) -> int:
    value = await conn.fetchval(
        "SELECT max(id) FROM notifications WHERE account_id = $1", account_id
    )
    return int(value or 0)


# --- notifier ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    notification: Stored
    attempts: int
    done: frozenset[str]  # channels with a delivery row already


# Take a batch of due, unleased queue rows (SKIP LOCKED: notifiers never block each other)
# and lease them, in one statement.
LEASE = """
WITH picked AS (
    SELECT notification_id FROM notification_pending
    WHERE next_attempt_at <= $1 AND leased_until <= $1
    ORDER BY notification_id LIMIT $2
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE notification_pending p SET leased_until = $3
    FROM picked WHERE p.notification_id = picked.notification_id
    RETURNING p.notification_id, p.attempts
)
SELECT n.id, n.account_id, n.kind, n.subject, n.payload::text AS payload, n.created_at,
       n.read_at, l.attempts,
       ARRAY(SELECT d.channel FROM notification_deliveries d WHERE d.notification_id = n.id)
           AS done
FROM leased l JOIN notifications n ON n.id = l.notification_id
ORDER BY n.id
"""


async def lease_pending(
    conn: Any, *, now: dt.datetime, limit: int, lease_until: dt.datetime
) -> list[Pending]:
    rows = await conn.fetch(LEASE, now, limit, lease_until)
    return [Pending(_stored(r), r["attempts"], frozenset(r["done"])) for r in rows]


async def record_deliveries(
    conn: Any, deliveries: Sequence[tuple[int, str, str, int]], at: dt.datetime
) -> None:
    """(notification id, channel, outcome, attempts) rows; a row already there stays."""
    if not deliveries:
        return
    await conn.execute(
        "INSERT INTO notification_deliveries"
        " (notification_id, channel, outcome, attempts, delivered_at)"
        " SELECT u.id, u.channel, u.outcome, u.attempts, $5"
        " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[])"
        " AS u(id, channel, outcome, attempts)"
        " ON CONFLICT (notification_id, channel) DO NOTHING",
        [d[0] for d in deliveries],
        [d[1] for d in deliveries],
        [d[2] for d in deliveries],
        [d[3] for d in deliveries],
        at,
    )


async def settle(
    conn: Any, *, finished: Sequence[int], retry: Sequence[tuple[int, dt.datetime]]
) -> None:
    """Drop the queue rows of notifications every channel is done with; put the others
    back with their next attempt time and one more failed attempt (lease released)."""
    if finished:
        await conn.execute(
            "DELETE FROM notification_pending WHERE notification_id = ANY($1::bigint[])",
            list(finished),
        )
    if retry:
        await conn.execute(
            "UPDATE notification_pending p SET attempts = p.attempts + 1,"
            " next_attempt_at = u.at, leased_until = '-infinity'"
            " FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at)"
            " WHERE p.notification_id = u.id",
            [r[0] for r in retry],
            [r[1] for r in retry],
        )


async def release_leases(conn: Any, ids: Sequence[int]) -> None:
    """Give back rows taken but not worked on (a notifier stopping mid-batch)."""
    if ids:
        await conn.execute(
            "UPDATE notification_pending SET leased_until = '-infinity'"
            " WHERE notification_id = ANY($1::bigint[])",
            list(ids),
        )


async def oldest_pending_at(conn: Any) -> dt.datetime | None:
    value: dt.datetime | None = await conn.fetchval(
        "SELECT n.created_at FROM notification_pending p JOIN notifications n"
        " ON n.id = p.notification_id ORDER BY p.notification_id LIMIT 1"
    )
    return value


# One statement, one transaction: due reminders become REMINDER notifications and are
# marked fired; a reminder fires once (fired_at, and the notification's dedupe key).
FIRE_REMINDERS = """
WITH due AS (
    SELECT id FROM reminders
    WHERE remind_at <= $1 AND fired_at IS NULL AND cancelled_at IS NULL
    ORDER BY remind_at, id LIMIT $2
    FOR UPDATE SKIP LOCKED
), fired AS (
    UPDATE reminders r SET fired_at = $1 FROM due WHERE r.id = due.id
    RETURNING r.id, r.account_id, r.subject, r.payload, r.dedupe_key, r.remind_at
), recorded AS (
    INSERT INTO notifications (account_id, kind, subject, payload, dedupe_key, created_at)
    SELECT account_id, 'reminder', subject, payload, 'reminder:' || dedupe_key, remind_at
    FROM fired ORDER BY remind_at, id
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM fired) AS fired, (SELECT count(*) FROM recorded) AS recorded
"""


async def fire_due_reminders(conn: Any, *, now: dt.datetime, limit: int) -> tuple[int, int]:
    row = await conn.fetchrow(FIRE_REMINDERS, now, limit)
    return int(row["fired"]), int(row["recorded"])
