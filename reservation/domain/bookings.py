"""Booking and ticket states, and how outbox events become their rows (pure; no I/O).

Slot events (no ``kind`` field) become ``bookings`` rows; seat events (``kind=seat``, see
``inventory/seat_engine.py``) become ``tickets`` rows, one per passenger of the hold.

Always: a booking's state only moves forward, held(1) -> confirmed(2) -> cancelled or
expired(3). Writers (the confirm path, the persister, a replay) may arrive in any order and
any number of times; ranking the states makes every write idempotent and order-free.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from reservation.domain.clock import from_ms
from reservation.domain.verification import verification_code

STATE_RANK = {"held": 1, "confirmed": 2, "cancelled": 3, "expired": 3}
TERMINAL_STATES = frozenset({"cancelled", "expired"})


class MalformedEvent(ValueError):
    """An outbox entry that can never be written (poison): it goes to the dead letters."""


@dataclass(frozen=True, slots=True)
class BookingRow:
    id: str
    slot_id: str
    account_id: str
    person_hmac: str
    state: str
    idempotency_key: str
    held_at: dt.datetime
    deadline: dt.datetime
    confirmed_at: dt.datetime | None
    ended_at: dt.datetime | None
    end_reason: str | None

    @property
    def state_rank(self) -> int:
        return STATE_RANK[self.state]


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: str
    hold_id: str
    type: str
    at: dt.datetime
    payload: dict[str, str]


def _ms(fields: dict[str, str], name: str) -> dt.datetime:
    try:
        return from_ms(int(fields[name]))
    # An integer no datetime can hold fails with OverflowError (too big for a float) or
    # OSError (beyond time_t), not ValueError. Uncaught, the persister took OSError for
    # "backend unavailable" and retried the pass forever: one bad entry stalled every shard.
    except (KeyError, ValueError, OverflowError, OSError) as exc:
        raise MalformedEvent(f"field {name!r} missing or not a time") from exc


def booking_from_event(fields: dict[str, str]) -> BookingRow:
    """The booking as one outbox event describes it (events carry the whole booking)."""
    kind = fields.get("type", "")
    if kind not in STATE_RANK:
        raise MalformedEvent(f"unknown event type {kind!r}")
    try:
        hold_id, slot_id, account_id, person = (
            fields["hold"],
            fields["slot"],
            fields["account"],
            fields["person"],
        )
    except KeyError as exc:
        raise MalformedEvent(f"field {exc.args[0]!r} missing") from exc
    confirmed = fields.get("confirmed") or ""
    return BookingRow(
        id=hold_id,
        slot_id=slot_id,
        account_id=account_id,
        person_hmac=person,
        state=kind,
        idempotency_key=fields.get("idem", ""),
        held_at=_ms(fields, "held"),
        deadline=_ms(fields, "deadline"),
        confirmed_at=_ms(fields, "confirmed") if confirmed else None,
        ended_at=_ms(fields, "at") if kind in TERMINAL_STATES else None,
        end_reason=fields.get("reason") if kind in TERMINAL_STATES else None,
    )


def event_row(event_id: str, fields: dict[str, str]) -> EventRow:
    if is_seat_event(fields):
        tickets_from_event(fields, code_key=b"")  # validates
    else:
        booking_from_event(fields)  # validates
    return EventRow(
        event_id=event_id,
        hold_id=fields["hold"],
        type=fields["type"],
        at=_ms(fields, "at"),
        payload=dict(fields),
    )


def latest_per_booking(rows: list[BookingRow]) -> list[BookingRow]:
    """Collapse several events of one booking to the furthest state, keeping the earliest
    confirmation time: one upsert per booking per batch."""
    best: dict[str, BookingRow] = {}
    for row in rows:
        seen = best.get(row.id)
        if seen is None or row.state_rank > seen.state_rank:
            if seen is not None and row.confirmed_at is None and seen.confirmed_at is not None:
                row = _with_confirmed(row, seen.confirmed_at)
            best[row.id] = row
    return list(best.values())


def _with_confirmed(row: BookingRow, confirmed_at: dt.datetime) -> BookingRow:
    return BookingRow(
        row.id,
        row.slot_id,
        row.account_id,
        row.person_hmac,
        row.state,
        row.idempotency_key,
        row.held_at,
        row.deadline,
        confirmed_at,
        row.ended_at,
        row.end_reason,
    )


# --- train tickets (seat events) ---------------------------------------------------------

# held(1) -> confirmed(2) -> cancelled / expired / changed(3) -> refunded(4). A refund is
# recorded after the seat's cancellation, by the refund path: a late `cancelled` event of
# the same ticket must not undo it, hence its own, higher rank.
TICKET_STATE_RANK = {
    "held": 1,
    "confirmed": 2,
    "cancelled": 3,
    "expired": 3,
    "changed": 3,
    "refunded": 4,
}
# Seat event type -> ticket state. ``released`` is the old ticket of a committed 改签.
SEAT_EVENT_STATE = {
    "held": "held",
    "confirmed": "confirmed",
    "cancelled": "cancelled",
    "expired": "expired",
    "released": "changed",
}
MAX_PARTY = 5


def is_seat_event(fields: dict[str, str]) -> bool:
    return fields.get("kind") == "seat"


def ticket_id(hold_id: str, passenger_no: int) -> str:
    """``<hold id>.<n>``: the n-th passenger (from 1) of a seat hold."""
    return f"{hold_id}.{passenger_no}"


@dataclass(frozen=True, slots=True)
class TicketRow:
    id: str
    hold_id: str
    passenger_no: int
    run_id: str
    seat_class: str
    coach: str
    seat: str
    position: str
    seg_from: int
    seg_to: int
    person_hmac: str
    account_id: str
    state: str
    verification_code: str | None
    change_of: str | None
    changed_to: str | None
    held_at: dt.datetime | None
    deadline: dt.datetime | None
    confirmed_at: dt.datetime | None
    ended_at: dt.datetime | None
    end_reason: str | None
    # Not in seat events: the confirm path knows the fare and writes it.
    price_fen: int | None = None

    @property
    def state_rank(self) -> int:
        return TICKET_STATE_RANK[self.state]


def _int(fields: dict[str, str], name: str) -> int:
    try:
        return int(fields[name])
    except (KeyError, ValueError) as exc:
        raise MalformedEvent(f"field {name!r} missing or not an integer") from exc


def _seat(tail: str) -> tuple[str, str, str]:
    """``ordinal|coach|row|letter|position`` -> (coach, seat label ``07F``, position)."""
    parts = tail.split("|")
    if len(parts) != 5 or not parts[1] or not parts[2].isdigit() or not parts[3]:
        raise MalformedEvent(f"bad seat {tail!r}")
    _, coach, row, letter, position = parts
    return coach, f"{int(row):02d}{letter}", position


def tickets_from_event(fields: dict[str, str], *, code_key: bytes) -> list[TicketRow]:
    """The tickets one seat event describes (events carry the whole hold), one per
    passenger in order. A confirmed event gives each ticket its verification code."""
    kind = fields.get("type", "")
    state = SEAT_EVENT_STATE.get(kind)
    if state is None:
        raise MalformedEvent(f"unknown seat event type {kind!r}")
    try:
        hold_id, run_id, seat_class, account_id = (
            fields["hold"],
            fields["run"],
            fields["cls"],
            fields["acct"],
        )
        seats = [_seat(t) for t in fields["seats"].split(";")]
        pax = fields["pax"].split(",")
    except KeyError as exc:
        raise MalformedEvent(f"field {exc.args[0]!r} missing") from exc
    if not (hold_id and run_id and seat_class and account_id):
        raise MalformedEvent("hold, run, cls and acct must not be empty")
    if len(seats) != len(pax) or not 1 <= len(pax) <= MAX_PARTY or not all(pax):
        raise MalformedEvent("seats and pax must pair 1..5 passengers")
    a, b = _int(fields, "a"), _int(fields, "b")
    if not 0 <= a < b:
        raise MalformedEvent(f"bad segments [{a}, {b})")
    at = _ms(fields, "at")
    terminal = TICKET_STATE_RANK[state] >= 3
    rows = []
    for n, ((coach, seat, position), person) in enumerate(zip(seats, pax, strict=True), 1):
        tid = ticket_id(hold_id, n)
        rows.append(
            TicketRow(
                id=tid,
                hold_id=hold_id,
                passenger_no=n,
                run_id=run_id,
                seat_class=seat_class,
                coach=coach,
                seat=seat,
                position=position,
                seg_from=a,
                seg_to=b,
                person_hmac=person,
                account_id=account_id,
                state=state,
                verification_code=verification_code(tid, code_key)
                if state == "confirmed"
                else None,
                change_of=fields.get("change_of") or None,
                changed_to=fields.get("changed_to") or None,
                held_at=at if state == "held" else None,
                deadline=_ms(fields, "deadline") if state == "held" else None,
                confirmed_at=at if state == "confirmed" else None,
                ended_at=at if terminal else None,
                end_reason=(fields.get("reason") or state) if terminal else None,
            )
        )
    return rows


def merge_tickets(rows: list[TicketRow]) -> list[TicketRow]:
    """Collapse several events of one ticket in a batch into one row: the furthest state,
    and every time and code any of them knew (the first one seen wins). One upsert per
    ticket per batch, the same result in any order."""
    merged: dict[str, TicketRow] = {}
    for row in rows:
        seen = merged.get(row.id)
        if seen is None:
            merged[row.id] = row
            continue
        ahead, behind = (row, seen) if row.state_rank > seen.state_rank else (seen, row)
        merged[row.id] = dataclasses.replace(
            ahead,
            **{name: getattr(ahead, name) or getattr(behind, name) for name in _MERGED_FIELDS},
        )
    return list(merged.values())


_MERGED_FIELDS = (
    "price_fen",
    "verification_code",
    "change_of",
    "changed_to",
    "held_at",
    "deadline",
    "confirmed_at",
    "ended_at",
    "end_reason",
)
