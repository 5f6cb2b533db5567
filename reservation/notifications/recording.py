"""Recording notifications for booking and ticket rows, inside the caller's transaction.

The persister calls :func:`record_for_events` with the rows of a batch of outbox events;
the train workflows that commit ticket rows before answering (pay, cancel, 改签) call it
with the rows they write, and the refund path records its refund. The same change yields
the same dedupe key on both paths, so whichever commits first records it and the other
records nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from reservation.domain.bookings import BookingRow, TicketRow
from reservation.notifications.messages import (
    Note,
    Plan,
    plan_for_bookings,
    plan_for_tickets,
)
from reservation.notifications.store import apply_plan, record_notes
from reservation.store.vaccine import vaccine_hold_ids


async def record_for_events(
    conn: Any,
    bookings: Sequence[BookingRow],
    tickets: Sequence[TicketRow],
    *,
    reminder_lead: dt.timedelta,
    series_holds: Collection[str] = (),
) -> int:
    """Notifications (and reminders) for these rows, after the rows were written in the
    same transaction. Returns how many notifications are new.

    ``series_holds``: holds whose events carry a vaccine series marker."""
    plan = Plan()
    plan_for_bookings(await _without_vaccine_notes(conn, bookings, series_holds), plan)
    plan_for_tickets(tickets, plan)
    return await apply_plan(conn, plan, reminder_lead=reminder_lead)


async def record_notes_now(conn: Any, notes: Sequence[Note]) -> int:
    """Record prepared notes (e.g. a refund) inside the caller's transaction."""
    return await record_notes(conn, notes)


# --- vaccine (issue 6) ------------------------------------------------------------------
# The vaccine workflows record the held, confirmed and cancelled notes of their holds
# themselves, richer (product, dose, site, person, code) and under the same dedupe keys.
# Left to "whoever commits first", the persister's generic note sometimes won the race
# (it may write an event before the workflow's own transaction commits), so the persister
# records none for those events: the vaccine's note is the one kept, deterministically.
# An expiry has no vaccine note, so the generic `expired` is kept.
_VACCINE_NOTED = frozenset({"held", "confirmed", "cancelled"})


async def _without_vaccine_notes(
    conn: Any, rows: Sequence[BookingRow], series_holds: Collection[str]
) -> Sequence[BookingRow]:
    # Held and confirmed events of a series always carry its marker (only the series
    # scripts write them, before the workflow commits its appointments); a cancel's event
    # may not (slot_free writes none), but by then the appointment exists: look those up.
    unmarked = {r.id for r in rows if r.state == "cancelled" and r.id not in series_holds}
    vaccine = set(series_holds) | (
        await vaccine_hold_ids(conn, list(unmarked)) if unmarked else set()
    )
    if not vaccine:
        return rows
    return [r for r in rows if not (r.state in _VACCINE_NOTED and r.id in vaccine)]
