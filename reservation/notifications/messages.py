"""What the citizen is told about booking and ticket changes (pure; no I/O).

The persister (from outbox events) and the train workflows (from the rows they commit
before answering) describe the same change with the same rows, so both build their
notifications here: same dedupe key, same payload, whichever commits first. The dedupe
key names the change (``booking:<id>:<state>``, ``order:<id>:<state>``), so a replayed
event or a retried request records nothing new.

Always: one notification per state a booking or order reaches; a 改签 is one ``changed``
notification on the old order (its new hold's ``held``/``confirmed`` are part of it); a
confirmation schedules the day-before reminder and every ending cancels it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reservation.domain.bookings import BookingRow, TicketRow
from reservation.domain.clock import iso
from reservation.notifications.record import NotificationKind

_KINDS = {
    "held": NotificationKind.HELD,
    "confirmed": NotificationKind.CONFIRMED,
    "cancelled": NotificationKind.CANCELLED,
    "expired": NotificationKind.EXPIRED,
    "changed": NotificationKind.CHANGED,
    "refunded": NotificationKind.REFUNDED,
}


@dataclass(frozen=True, slots=True)
class Note:
    account_id: str
    kind: NotificationKind
    subject: str
    payload: dict[str, Any]
    dedupe_key: str
    at: dt.datetime
    # A seat hold's ``cancelled`` event does not say whether it was paid; a paid one is a
    # refund, which the refund path reports itself (with the amounts). Recorded only if no
    # ticket of this hold was ever confirmed (checked in SQL, in the same transaction).
    unless_paid_hold: str | None = None


@dataclass
class Plan:
    """Notifications to record, and reminders to schedule or cancel, for one batch."""

    notes: list[Note] = field(default_factory=list)
    remind_bookings: list[str] = field(default_factory=list)  # confirmed slot bookings
    remind_orders: list[str] = field(default_factory=list)  # confirmed seat holds
    end_subjects: list[tuple[str, dt.datetime]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.notes or self.remind_bookings or self.remind_orders or self.end_subjects)


def booking_subject(booking_id: str) -> str:
    return f"booking:{booking_id}"


def order_subject(hold_id: str) -> str:
    return f"order:{hold_id}"


def _event_time(state: str, row: BookingRow | TicketRow) -> dt.datetime:
    if state == "held" and row.held_at is not None:
        return row.held_at
    if state == "confirmed" and row.confirmed_at is not None:
        return row.confirmed_at
    if row.ended_at is not None:
        return row.ended_at
    return row.confirmed_at or row.held_at or dt.datetime.now(dt.UTC)


def plan_for_bookings(rows: Sequence[BookingRow], plan: Plan | None = None) -> Plan:
    """One notification per booking event row (in order; not collapsed per booking)."""
    plan = plan if plan is not None else Plan()
    for row in rows:
        kind = _KINDS.get(row.state)
        if kind is None:
            continue
        subject = booking_subject(row.id)
        at = _event_time(row.state, row)
        payload: dict[str, Any] = {"booking_id": row.id, "slot_id": row.slot_id, "state": row.state}
        if row.state == "held":
            payload["pay_by"] = iso(row.deadline)
        if row.end_reason:
            payload["reason"] = row.end_reason
        plan.notes.append(
            Note(row.account_id, kind, subject, payload, f"{subject}:{row.state}", at)
        )
        if row.state == "confirmed":
            plan.remind_bookings.append(row.id)
        elif row.state in ("cancelled", "expired"):
            plan.end_subjects.append((subject, at))
    return plan


def plan_for_tickets(rows: Sequence[TicketRow], plan: Plan | None = None) -> Plan:
    """One notification per (order, state) among ticket rows (one row per passenger)."""
    plan = plan if plan is not None else Plan()
    groups: dict[tuple[str, str], list[TicketRow]] = {}
    for row in rows:
        groups.setdefault((row.hold_id, row.state), []).append(row)
    for (hold_id, state), party in groups.items():
        kind = _KINDS.get(state)
        if kind is None:
            continue
        first = party[0]
        subject = order_subject(hold_id)
        at = _event_time(state, first)
        if state == "confirmed":
            plan.remind_orders.append(hold_id)
        elif state in ("cancelled", "expired", "changed", "refunded"):
            plan.end_subjects.append((subject, at))
        if first.change_of and state in ("held", "confirmed"):
            continue  # the new hold of a 改签: the old order's `changed` tells it
        payload: dict[str, Any] = {
            "order_id": hold_id,
            "run_id": first.run_id,
            "seat_class": first.seat_class,
            "state": state,
            "tickets": [
                {"ticket_id": r.id, "coach": r.coach, "seat": r.seat}
                for r in sorted(party, key=lambda r: r.passenger_no)
            ],
        }
        if state == "held" and first.deadline is not None:
            payload["pay_by"] = iso(first.deadline)
        if state == "changed" and first.changed_to:
            payload["changed_to"] = first.changed_to
        plan.notes.append(
            Note(
                first.account_id,
                kind,
                subject,
                payload,
                f"{subject}:{state}",
                at,
                unless_paid_hold=hold_id if state == "cancelled" else None,
            )
        )
    return plan


def refund_note(
    *,
    account_id: str,
    hold_id: str,
    places: Sequence[int],
    fee_fen: int,
    refunded_fen: int,
    at: dt.datetime,
) -> Note:
    """A refund of some or all tickets of an order (each refund names its places)."""
    subject = order_subject(hold_id)
    places_key = ",".join(str(p) for p in sorted(places))
    return Note(
        account_id,
        NotificationKind.REFUNDED,
        subject,
        {
            "order_id": hold_id,
            "tickets": [f"{hold_id}.{p}" for p in sorted(places)],
            "fee_fen": fee_fen,
            "refunded_fen": refunded_fen,
        },
        f"{subject}:refunded:{places_key}",
        at,
    )
