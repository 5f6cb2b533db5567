"""Outbox events -> booking rows (pure): ranks, collapsing a batch, malformed events."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservation.domain.bookings import (
    STATE_RANK,
    TERMINAL_STATES,
    BookingRow,
    EventRow,
    MalformedEvent,
    booking_from_event,
    event_row,
    latest_per_booking,
)

T0 = 1_740_000_000_000  # ms since the epoch


def utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def held(hold: str = "h7-aa", *, at: int = T0) -> dict[str, str]:
    """Fields exactly as slot_hold.lua appends them."""
    return {
        "type": "held",
        "hold": hold,
        "slot": "s7-bb",
        "account": "acct-1",
        "person": "p" * 64,
        "at": str(at),
        "held": str(T0),
        "deadline": str(T0 + 600_000),
        "idem": "key-1",
    }


def confirmed(hold: str = "h7-aa", *, at: int = T0 + 10_000) -> dict[str, str]:
    return {**held(hold), "type": "confirmed", "at": str(at), "confirmed": str(at)}


def ended(
    kind: str, hold: str = "h7-aa", *, at: int = T0 + 20_000, confirmed_ms: int | None = None
) -> dict[str, str]:
    """Fields as slot_release.lua appends them (``confirmed`` empty when never paid)."""
    return {
        **held(hold),
        "type": kind,
        "at": str(at),
        "confirmed": "" if confirmed_ms is None else str(confirmed_ms),
        "reason": "citizen",
    }


def test_states_only_move_forward() -> None:
    assert STATE_RANK == {"held": 1, "confirmed": 2, "cancelled": 3, "expired": 3}
    assert frozenset({"cancelled", "expired"}) == TERMINAL_STATES


def test_a_held_event_becomes_a_held_row() -> None:
    row = booking_from_event(held())
    assert row == BookingRow(
        id="h7-aa",
        slot_id="s7-bb",
        account_id="acct-1",
        person_hmac="p" * 64,
        state="held",
        idempotency_key="key-1",
        held_at=utc(T0),
        deadline=utc(T0 + 600_000),
        confirmed_at=None,
        ended_at=None,
        end_reason=None,
    )
    assert row.state_rank == 1


def test_a_confirmed_event_carries_its_confirmation_time() -> None:
    row = booking_from_event(confirmed())
    assert (row.state, row.state_rank, row.confirmed_at, row.ended_at) == (
        "confirmed",
        2,
        utc(T0 + 10_000),
        None,
    )


def test_a_terminal_event_carries_end_time_reason_and_any_confirmation() -> None:
    paid = booking_from_event(ended("cancelled", confirmed_ms=T0 + 10_000))
    assert (paid.state, paid.state_rank, paid.confirmed_at, paid.ended_at, paid.end_reason) == (
        "cancelled",
        3,
        utc(T0 + 10_000),
        utc(T0 + 20_000),
        "citizen",
    )
    unpaid = booking_from_event({**ended("expired"), "reason": "deadline"})
    assert (unpaid.state, unpaid.confirmed_at, unpaid.ended_at, unpaid.end_reason) == (
        "expired",
        None,
        utc(T0 + 20_000),
        "deadline",
    )


def test_a_missing_idempotency_key_is_empty_not_malformed() -> None:
    fields = held()
    del fields["idem"]
    assert booking_from_event(fields).idempotency_key == ""


def test_event_row_keeps_the_whole_payload() -> None:
    fields = confirmed()
    assert event_row("7:1-0", fields) == EventRow(
        event_id="7:1-0", hold_id="h7-aa", type="confirmed", at=utc(T0 + 10_000), payload=fields
    )


def _without(fields: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k != name}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (_without(held(), "type"), "unknown event type ''"),
        ({**held(), "type": "sold"}, "unknown event type 'sold'"),
        (_without(held(), "hold"), "field 'hold' missing"),
        (_without(held(), "slot"), "field 'slot' missing"),
        (_without(held(), "account"), "field 'account' missing"),
        (_without(held(), "person"), "field 'person' missing"),
        (_without(held(), "held"), "field 'held' missing or not a time"),
        ({**held(), "deadline": "soon"}, "field 'deadline' missing or not a time"),
        ({**confirmed(), "confirmed": "1.5e12"}, "field 'confirmed' missing or not a time"),
        (_without(ended("cancelled"), "at"), "field 'at' missing or not a time"),
        # Numbers no datetime can hold are as malformed as words (year 33658; beyond time_t).
        ({**held(), "held": str(10**15)}, "field 'held' missing or not a time"),
        ({**held(), "deadline": str(10**20)}, "field 'deadline' missing or not a time"),
        ({**held(), "held": str(-(10**20))}, "field 'held' missing or not a time"),
        ({**held(), "held": "9" * 400}, "field 'held' missing or not a time"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(fields: dict[str, str], message: str) -> None:
    with pytest.raises(MalformedEvent) as refused:
        booking_from_event(fields)
    assert str(refused.value) == message
    with pytest.raises(MalformedEvent):
        event_row("7:1-0", fields)


@pytest.mark.parametrize("bad_at", [None, "now", str(10**20)])
def test_a_non_terminal_event_without_a_usable_time_is_malformed_as_an_event(
    bad_at: str | None,
) -> None:
    fields = _without(held(), "at") if bad_at is None else {**held(), "at": bad_at}
    booking_from_event(fields)  # the booking itself does not need ``at``...
    with pytest.raises(MalformedEvent, match="field 'at' missing or not a time"):
        event_row("7:1-0", fields)  # ...but the event does


def test_latest_per_booking_keeps_the_furthest_state_per_booking() -> None:
    rows = [
        booking_from_event(f)
        for f in (
            held("h1-a"),
            held("h1-b"),
            confirmed("h1-a"),
            ended("cancelled", "h1-a", confirmed_ms=T0 + 10_000),
            confirmed("h1-b"),
        )
    ]
    latest = {r.id: r for r in latest_per_booking(rows)}
    assert sorted(latest) == ["h1-a", "h1-b"]
    assert latest["h1-a"] == rows[3]
    assert latest["h1-b"] == rows[4]


def test_latest_per_booking_fills_a_lost_confirmation_time_from_an_earlier_row() -> None:
    # A terminal event without ``confirmed`` after a confirmation in the same batch keeps
    # the confirmation time rather than erasing it.
    rows = [booking_from_event(confirmed()), booking_from_event(ended("cancelled"))]
    [row] = latest_per_booking(rows)
    assert row == replace(rows[1], confirmed_at=utc(T0 + 10_000))


def test_latest_per_booking_of_nothing_is_nothing() -> None:
    assert latest_per_booking([]) == []


# Property: whatever order (and however many times) a batch delivers a booking's events,
# the collapsed row is the one its final event describes. -------------------------------


@st.composite
def lifecycles(draw: st.DrawFn) -> list[dict[str, str]]:
    """Events of a few bookings, as the Lua scripts can really produce them."""
    events: list[dict[str, str]] = []
    for n in range(draw(st.integers(1, 4))):
        hold = f"h3-{n:04x}"
        events.append(held(hold))
        paid = draw(st.booleans())
        if paid:
            events.append(confirmed(hold, at=T0 + 1000 * draw(st.integers(1, 500))))
        end = draw(st.sampled_from(["", "cancelled", "expired"] if not paid else ["", "cancelled"]))
        if end:
            confirmed_ms = int(events[-1]["confirmed"]) if paid else None
            events.append(ended(end, hold, at=T0 + 600_000, confirmed_ms=confirmed_ms))
    return events


def final_rows(events: list[dict[str, str]]) -> dict[str, BookingRow]:
    """The row each booking's last event (in causal order) describes."""
    return {f["hold"]: booking_from_event(f) for f in events}


@given(st.data())
def test_latest_per_booking_does_not_depend_on_order_or_duplicates(data: st.DataObject) -> None:
    events = data.draw(lifecycles())
    replayed = data.draw(st.lists(st.sampled_from(events), max_size=4))
    delivered = data.draw(st.permutations(events + replayed))
    latest = latest_per_booking([booking_from_event(f) for f in delivered])
    assert len(latest) == len({r.id for r in latest})
    assert {r.id: r for r in latest} == final_rows(events)
