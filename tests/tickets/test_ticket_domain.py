"""Pure ticket rules: the passenger list, orders, overlaps, the cancellation counter, refund
fees at every tier boundary, verification codes, seat events -> ticket rows, payments."""

from __future__ import annotations

import datetime as dt

import pytest

from reservation.domain import refunds
from reservation.domain.bookings import (
    MalformedEvent,
    TicketRow,
    event_row,
    merge_tickets,
    tickets_from_event,
)
from reservation.domain.clock import CHINA, from_ms
from reservation.domain.identity import id_hmac
from reservation.domain.passengers import (
    BadIdNumber,
    DuplicatePassenger,
    KindNotAllowed,
    ListFull,
    PassengerKind,
    age_on,
    check_new_passenger,
    holder_kind,
)
from reservation.domain.refunds import FeeTier, RefundClosed, RefundSchedule, round_half_up
from reservation.domain.ticket_rules import (
    BadPartySize,
    CancellationLimit,
    DuplicateInOrder,
    OverlappingTrip,
    TicketRules,
    Trip,
    cancellations_today,
    check_cancellation_limit,
    check_no_overlap,
    check_party,
)
from reservation.domain.verification import (
    ALPHABET,
    LENGTH,
    check_code,
    display,
    verification_code,
)
from reservation.payments import (
    PaymentKeyReused,
    PaymentStatus,
    PaymentUnavailable,
    RefundTooLarge,
    SimulatedProvider,
)
from tests.helpers import make_id_number

KEY = b"k"
TODAY = dt.date(2026, 11, 23)

# --- passenger list ------------------------------------------------------------------------


def add(number: str, existing: set[str], kind: PassengerKind = PassengerKind.ADULT) -> str:
    new = check_new_passenger(
        name="李四", id_number=number, kind=kind, existing_hmacs=existing, hmac_key=KEY, today=TODAY
    )
    return new.resident_id.hmac_hex


def test_fifteen_passengers_fit_and_the_sixteenth_is_refused() -> None:
    existing: set[str] = set()
    for _ in range(15):
        existing.add(add(make_id_number(), existing))
    assert len(existing) == 15
    with pytest.raises(ListFull) as info:
        add(make_id_number(), existing)
    assert (info.value.code, info.value.field) == ("passenger_list_full", "id_number")


def test_the_same_id_number_twice_is_a_duplicate_even_in_lower_case() -> None:
    number = make_id_number(dt.date(1985, 3, 4))
    existing = {add(number, set())}
    with pytest.raises(DuplicatePassenger):
        add(number, existing)
    # The HMAC is of the upper-cased number: an 'x' check digit matches an 'X'.
    assert id_hmac("11010519850304001x", KEY) == id_hmac("11010519850304001X", KEY)


def test_a_duplicate_is_reported_before_a_full_list() -> None:
    number = make_id_number()
    existing = {add(number, set())} | {f"other{i}" for i in range(14)}
    with pytest.raises(DuplicatePassenger):
        add(number, existing)


def test_invalid_id_numbers_are_refused() -> None:
    good = make_id_number()
    bad_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    future = make_id_number(dt.date(2027, 1, 1))
    for number in (bad_check, "123", future):
        with pytest.raises(BadIdNumber) as info:
            add(number, set())
        assert info.value.field == "id_number"


def test_a_child_must_be_under_fourteen() -> None:
    add(make_id_number(dt.date(2012, 11, 24)), set(), PassengerKind.CHILD)  # 13 today
    with pytest.raises(KindNotAllowed):
        add(make_id_number(dt.date(2012, 11, 23)), set(), PassengerKind.CHILD)  # 14 today
    assert age_on(dt.date(2012, 11, 23), TODAY) == 14
    assert age_on(dt.date(2012, 11, 24), TODAY) == 13
    assert holder_kind(dt.date(2012, 11, 24), TODAY) is PassengerKind.CHILD
    assert holder_kind(dt.date(1990, 1, 1), TODAY) is PassengerKind.ADULT


# --- orders --------------------------------------------------------------------------------


def test_party_size_is_one_to_five() -> None:
    check_party(["a"])
    check_party(["a", "b", "c", "d", "e"])
    for party in ([], ["a", "b", "c", "d", "e", "f"]):
        with pytest.raises(BadPartySize) as info:
            check_party(party)
        assert info.value.detail == {"max": 5, "got": len(party)}
    check_party(list("abcdefg"), TicketRules(max_party=7))


def test_a_passenger_twice_in_one_order_is_refused() -> None:
    with pytest.raises(DuplicateInOrder) as info:
        check_party(["a", "b", "a"])
    assert info.value.detail == {"passenger": "a"}


def at(hour: int, minute: int = 0, day: int = 23) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=CHINA)


def test_overlapping_trips_are_refused_and_touching_ones_allowed() -> None:
    existing = [Trip("G1", at(8), at(12)), Trip("G7", at(18), at(20))]
    check_no_overlap("p", Trip("G3", at(12), at(18)), existing)  # touches both ends
    check_no_overlap("p", Trip("G3", at(6), at(8)), existing)
    for trip in (
        Trip("G3", at(11, 59), at(13)),
        Trip("G3", at(7), at(21)),  # contains one
        Trip("G3", at(9), at(10)),  # inside one
        Trip("G3", at(19, 59), at(22)),
    ):
        with pytest.raises(OverlappingTrip) as info:
            check_no_overlap("p", trip, existing)
        assert info.value.detail["passenger"] == "p"
    with pytest.raises(ValueError, match="arrives after"):
        Trip("G1", at(9), at(9))


def test_three_cancellations_in_a_china_day_block_until_midnight() -> None:
    now = at(23, 30)
    yesterday_late = at(23, 59, day=22)
    cancelled = [yesterday_late, at(0, 0), at(9)]
    assert cancellations_today(cancelled, now) == 2
    check_cancellation_limit(cancelled, now)  # 2 today: allowed
    with pytest.raises(CancellationLimit) as info:
        check_cancellation_limit([*cancelled, at(10)], now)
    assert info.value.detail == {"count": 3, "until": "2026-11-24T00:00:00+08:00"}
    # The next China day starts afresh; UTC midnight is not the boundary.
    check_cancellation_limit([*cancelled, at(10)], at(0, 0, day=24))
    check_cancellation_limit([*cancelled, at(10)], now, TicketRules(cancellations_per_day=4))
    utc_now = dt.datetime(2026, 11, 23, 15, 59, tzinfo=dt.UTC)  # 23:59 in China
    assert cancellations_today([at(0, 0)], utc_now) == 1


# --- refund fees ---------------------------------------------------------------------------

DEPARTS = dt.datetime(2026, 12, 1, 8, 0, tzinfo=CHINA)


def fee(price: int, lead: dt.timedelta, schedule: RefundSchedule = refunds.DEFAULT_SCHEDULE) -> int:
    return schedule.fee_fen(price, departs=DEPARTS, now=DEPARTS - lead)


S = dt.timedelta(seconds=1)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        (30 * D, 0),
        (8 * D, 0),  # exactly 8 days: free
        (8 * D - S, 2750),  # 5 % of 553.00 = 27.65 -> 27.50
        (48 * H, 2750),  # exactly 48 h: 5 %
        (48 * H - S, 5550),  # 10 % = 55.30 -> 55.50
        (24 * H, 5550),  # exactly 24 h: 10 %
        (24 * H - S, 11050),  # 20 % = 110.60 -> 110.50
        (S, 11050),
    ],
)
def test_fee_tiers_at_their_exact_boundaries(lead: dt.timedelta, expected: int) -> None:
    assert fee(55300, lead) == expected
    assert (
        refunds.DEFAULT_SCHEDULE.refund_fen(55300, departs=DEPARTS, now=DEPARTS - lead)
        == 55300 - expected
    )


def test_no_refund_at_or_after_departure() -> None:
    for lead in (dt.timedelta(0), -H):
        with pytest.raises(RefundClosed):
            fee(55300, lead)


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (2000, 200),  # 5 % = 1.00: the minimum ¥2
        (3900, 200),  # 1.95 -> 2.00
        (4900, 250),  # 2.45 -> 2.50 (0.25 <= tail < 0.75 counts 0.5)
        (4400, 200),  # 2.20 -> 2.00 (tail < 0.25 dropped)
        (4500, 250),  # 2.25 -> 2.50 (exactly 0.25: half up)
        (5500, 300),  # 2.75 -> 3.00 (exactly 0.75: up)
        (150, 150),  # the minimum never exceeds the price
        (0, 0),
    ],
)
def test_rounding_to_half_a_yuan_and_the_minimum(price: int, expected: int) -> None:
    assert fee(price, 3 * D) == expected


def test_a_free_tier_charges_no_minimum() -> None:
    assert fee(100, 10 * D) == 0


def test_the_schedule_is_configurable_data() -> None:
    custom = RefundSchedule(
        tiers=(FeeTier(15 * D, 0), FeeTier(dt.timedelta(0), 1250)), minimum_fen=0, round_to_fen=1
    )
    assert fee(10001, 15 * D, custom) == 0
    assert fee(10001, 15 * D - S, custom) == 1250  # 1250.125 -> 1250
    assert fee(10004, 2 * D, custom) == 1251  # 1250.5 -> 1251
    for bad in (
        {"tiers": (FeeTier(H, 0),)},  # does not reach zero
        {"tiers": (FeeTier(dt.timedelta(0), 0), FeeTier(H, 0))},  # wrong order
        {"tiers": ()},
        {"round_to_fen": 0},
    ):
        with pytest.raises(ValueError):
            RefundSchedule(**bad)
    with pytest.raises(ValueError):
        FeeTier(H, 10_001)
    assert round_half_up(5, 10) == 1
    assert round_half_up(4, 10) == 0


# --- verification codes --------------------------------------------------------------------


def test_verification_codes_are_short_stable_keyed_and_unambiguous() -> None:
    code = verification_code("042-abc.1", b"secret")
    assert code == verification_code("042-abc.1", b"secret")
    assert len(code) == LENGTH == 8
    assert set(code) <= set(ALPHABET)
    assert not set("01ILOU") & set(ALPHABET)
    assert code != verification_code("042-abc.2", b"secret")
    assert code != verification_code("042-abc.1", b"other")
    assert check_code("042-abc.1", display(code).lower(), b"secret")
    assert check_code("042-abc.1", f" {code[:4]} {code[4:]} ", b"secret")
    assert not check_code("042-abc.1", "AAAAAAAA", b"secret")
    assert not check_code("042-abc.1", "票票票票", b"secret")  # non-ASCII input is just wrong
    codes = {verification_code(f"t{i}", b"secret") for i in range(2000)}
    assert len(codes) == 2000


def test_verification_code_is_pinned() -> None:
    # A change of derivation would invalidate every issued e-ticket: it must be deliberate.
    assert verification_code("042-abc.1", b"secret") == "GSGGER3Y"


# --- seat events -> ticket rows ------------------------------------------------------------

T0 = 1_900_000_000_000
HOLD = "042-" + "a" * 32


def seat_event(kind: str, at_ms: int, **extra: str) -> dict[str, str]:
    """Fields exactly as the seat scripts append them."""
    fields = {
        "type": kind,
        "hold": HOLD,
        "kind": "seat",
        "run": "G1-2026-12-01",
        "cls": "second",
        "acct": "acct-1",
        "a": "1",
        "b": "3",
        "seats": "00007|03|7|F|window;00006|03|7|D|aisle",
        "pax": "p1,p2",
        "at": str(at_ms),
    }
    fields.update(extra)
    return fields


def test_held_event_gives_one_ticket_per_passenger_in_order() -> None:
    rows = tickets_from_event(
        seat_event("held", T0, deadline=str(T0 + 900_000), change_of=""), code_key=KEY
    )
    assert [(r.id, r.passenger_no, r.coach, r.seat, r.position, r.person_hmac) for r in rows] == [
        (f"{HOLD}.1", 1, "03", "07F", "window", "p1"),
        (f"{HOLD}.2", 2, "03", "07D", "aisle", "p2"),
    ]
    first = rows[0]
    assert (first.state, first.state_rank, first.seg_from, first.seg_to) == ("held", 1, 1, 3)
    assert (first.held_at, first.deadline) == (from_ms(T0), from_ms(T0 + 900_000))
    assert (first.confirmed_at, first.ended_at, first.verification_code) == (None, None, None)
    assert first.change_of is None


def test_confirmed_event_carries_the_verification_code() -> None:
    rows = tickets_from_event(seat_event("confirmed", T0 + 5, change_of=""), code_key=KEY)
    assert [r.verification_code for r in rows] == [
        verification_code(f"{HOLD}.1", KEY),
        verification_code(f"{HOLD}.2", KEY),
    ]
    assert rows[0].confirmed_at == from_ms(T0 + 5)
    assert rows[0].held_at is None


def test_release_events_end_tickets() -> None:
    [gone, _] = tickets_from_event(
        seat_event("released", T0 + 9, reason="changed", changed_to="043-b"), code_key=KEY
    )
    assert (gone.state, gone.state_rank, gone.changed_to, gone.end_reason) == (
        "changed",
        3,
        "043-b",
        "changed",
    )
    assert gone.ended_at == from_ms(T0 + 9)
    [cancel, _] = tickets_from_event(seat_event("cancelled", T0, reason="cancelled"), code_key=KEY)
    assert (cancel.state, cancel.end_reason) == ("cancelled", "cancelled")


def test_merge_keeps_the_furthest_state_and_every_known_fact_in_any_order() -> None:
    events = [
        seat_event("held", T0, deadline=str(T0 + 900_000)),
        seat_event("confirmed", T0 + 5),
        seat_event("cancelled", T0 + 9, reason="cancelled"),
    ]
    rows = [r for e in events for r in tickets_from_event(e, code_key=KEY)]
    forward = merge_tickets(rows)
    backward = merge_tickets(rows[::-1])
    assert sorted(forward, key=lambda r: r.id) == sorted(backward, key=lambda r: r.id)
    one: TicketRow = next(r for r in forward if r.passenger_no == 1)
    assert (one.state, one.held_at, one.confirmed_at, one.ended_at) == (
        "cancelled",
        from_ms(T0),
        from_ms(T0 + 5),
        from_ms(T0 + 9),
    )
    assert one.verification_code == verification_code(f"{HOLD}.1", KEY)


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "sold"},
        {"seats": "00007|03|7|F|window"},  # one seat, two passengers
        {"seats": "00007|03|x|F|window;00006|03|7|D|aisle"},
        {"pax": "p1,"},
        {"a": "3"},
        {"b": "nope"},
        {"at": "later"},
        {"acct": ""},
    ],
)
def test_malformed_seat_events_are_poison(bad: dict[str, str]) -> None:
    fields = seat_event("cancelled", T0, **bad)
    with pytest.raises(MalformedEvent):
        tickets_from_event(fields, code_key=KEY)
    with pytest.raises(MalformedEvent):
        event_row("42:1-0", fields)


def test_a_seat_event_without_its_run_is_poison() -> None:
    fields = seat_event("held", T0, deadline=str(T0))
    del fields["run"]
    with pytest.raises(MalformedEvent):
        event_row("42:1-0", fields)


# --- payments ------------------------------------------------------------------------------


async def test_simulated_provider_is_idempotent_per_key_and_can_decline_or_fail() -> None:
    pay = SimulatedProvider(decline_orders={"o-bad"}, fail_next=1)
    with pytest.raises(PaymentUnavailable):
        await pay.charge("o1", 55300, "k1")
    first = await pay.charge("o1", 55300, "k1")
    again = await pay.charge("o1", 55300, "k1")
    assert (first.status, first.replay, again.replay) == (PaymentStatus.SUCCEEDED, False, True)
    assert again.payment_id == first.payment_id and first.payment_id.startswith("pay-")
    assert pay.charged_fen("o1") == 55300  # charged once
    with pytest.raises(PaymentKeyReused):
        await pay.charge("o1", 100, "k1")
    declined = await pay.charge("o-bad", 100, "k2")
    assert (declined.status, declined.ok, pay.charged_fen("o-bad")) == (
        PaymentStatus.DECLINED,
        False,
        0,
    )
    refund = await pay.refund("o1", 55300 - 2750, "r1")
    assert refund.ok and pay.refunded_fen("o1") == 52550
    with pytest.raises(RefundTooLarge):
        await pay.refund("o1", 2751, "r2")
    with pytest.raises(ValueError):
        await pay.charge("o1", -1, "k3")
    assert SimulatedProvider().name == "simulated"
    # Deterministic: another instance gives the same payment id for the same key.
    assert (await SimulatedProvider().charge("o1", 55300, "k1")).payment_id == first.payment_id
