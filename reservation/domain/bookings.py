"""Booking states and how outbox events become booking rows (pure; no I/O).

Always: a booking's state only moves forward, held(1) -> confirmed(2) -> cancelled or
expired(3). Writers (the confirm path, the persister, a replay) may arrive in any order and
any number of times; ranking the states makes every write idempotent and order-free.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reservation.domain.clock import from_ms

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
