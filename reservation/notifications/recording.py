"""Recording notifications for booking and ticket rows, inside the caller's transaction.

The persister calls :func:`record_for_events` with the rows of a batch of outbox events;
the train workflows that commit ticket rows before answering (pay, cancel, 改签) call it
with the rows they write, and the refund path records its refund. The same change yields
the same dedupe key on both paths, so whichever commits first records it and the other
records nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from reservation.domain.bookings import BookingRow, TicketRow
from reservation.notifications.messages import (
    Note,
    Plan,
    plan_for_bookings,
    plan_for_tickets,
)
from reservation.notifications.store import apply_plan, record_notes


async def record_for_events(
    conn: Any,
    bookings: Sequence[BookingRow],
    tickets: Sequence[TicketRow],
    *,
    reminder_lead: dt.timedelta,
) -> int:
    """Notifications (and reminders) for these rows, after the rows were written in the
    same transaction. Returns how many notifications are new."""
    plan = Plan()
    plan_for_bookings(bookings, plan)
    plan_for_tickets(tickets, plan)
    return await apply_plan(conn, plan, reminder_lead=reminder_lead)


async def record_notes_now(conn: Any, notes: Sequence[Note]) -> int:
    """Record prepared notes (e.g. a refund) inside the caller's transaction."""
    return await record_notes(conn, notes)
