"""Recording notifications and reminders: the contract every workflow calls.

Call these **inside the transaction** that makes the change being reported (``conn`` is
an asyncpg connection with a transaction open), so the notification commits or rolls
back with it. Delivery (live page, inbox, senders) is the notifier's job, not the
caller's. ``dedupe_key`` names the event, e.g. ``"booking:<id>:confirmed"``: recording
the same key twice is a no-op, which makes replays and retries safe.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Any


class NotificationKind(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    CHANGED = "changed"
    REFUNDED = "refunded"
    WAITLIST_FULFILLED = "waitlist_fulfilled"
    WAITLIST_ENDED = "waitlist_ended"
    STANDBY_FULFILLED = "standby_fulfilled"
    SESSION_CANCELLED = "session_cancelled"
    SOLD_OUT = "sold_out"
    REMINDER = "reminder"


async def record_notification(
    conn: Any,
    *,
    account_id: str,
    kind: NotificationKind,
    subject: str,
    payload: dict[str, Any],
    dedupe_key: str,
    at: dt.datetime,
) -> bool:
    """Record one notification; False when ``dedupe_key`` was already recorded."""
    row = await conn.fetchval(
        "INSERT INTO notifications (account_id, kind, subject, payload, dedupe_key, created_at)"
        " VALUES ($1, $2, $3, $4::text::jsonb, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING"
        " RETURNING id",
        account_id,
        str(kind),
        subject,
        json.dumps(payload),
        dedupe_key,
        at,
    )
    return row is not None


async def schedule_reminder(
    conn: Any,
    *,
    account_id: str,
    subject: str,
    remind_at: dt.datetime,
    payload: dict[str, Any],
    dedupe_key: str,
) -> bool:
    """Schedule a reminder (e.g. the day before an appointment or departure)."""
    row = await conn.fetchval(
        "INSERT INTO reminders (account_id, subject, remind_at, payload, dedupe_key)"
        " VALUES ($1, $2, $3, $4::text::jsonb, $5) ON CONFLICT (dedupe_key) DO NOTHING"
        " RETURNING id",
        account_id,
        subject,
        remind_at,
        json.dumps(payload),
        dedupe_key,
    )
    return row is not None


async def cancel_reminders(conn: Any, *, subject: str, at: dt.datetime) -> int:
    """Cancel every pending reminder about ``subject`` (a booking that was cancelled)."""
    result: str = await conn.execute(
        "UPDATE reminders SET cancelled_at = $2"
        " WHERE subject = $1 AND fired_at IS NULL AND cancelled_at IS NULL",
        subject,
        at,
    )
    return int(result.split()[-1])
