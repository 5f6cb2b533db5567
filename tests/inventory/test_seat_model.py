"""The reference model of the seat inventory: allocation policy and hold life cycle, pure."""

from __future__ import annotations

import pytest

from inventory.errors import (
    AlreadyExists,
    HoldExpired,
    HoldNotLive,
    NotFoundInInventory,
    NotOwner,
    PersonLimitReached,
)
from inventory.keys import Keys
from inventory.seat_codes import (
    ChangeAborted,
    ChangePending,
    HoldNotDue,
    IdempotencyKeyReused,
    InvalidSeatRequest,
    NoSeatForSegments,
    SeatCode,
    error_for,
)
from inventory.seat_model import SeatModel, SeatRef, SeatSpec, position_kind, seat_map

NOW = 1_000_000
HOLD_MS = 60_000


def second_class(coaches: int = 1, rows: int = 2) -> list[SeatSpec]:
    return [
        SeatSpec(f"{c:02d}", r, letter)
        for c in range(1, coaches + 1)
        for r in range(1, rows + 1)
        for letter in "ABCDF"
    ]


class Booker:
    """A model with one run published, and short names for its operations."""

    def __init__(self, nseg: int = 6, seats: list[SeatSpec] | None = None) -> None:
        self.model = SeatModel(Keys(prefix="m"), hold_ms=HOLD_MS)
        self.model.publish("G1", "second", nseg, seats or second_class())
        self.serial = 0

    def hold(self, a: int, b: int, party: int = 1, *, run: str = "G1", **kw: object) -> SeatRef:
        return self.hold_all(a, b, party, run=run, **kw)[0]

    def hold_all(
        self, a: int, b: int, party: int = 1, *, run: str = "G1", **kw: object
    ) -> tuple[SeatRef, ...]:
        self.serial += 1
        passengers = [f"p{self.serial}-{i}" for i in range(party)]
        held = self.model.hold(
            "acct", run, "second", a, b, passengers, now_ms=NOW,
            idempotency_key=f"k{self.serial}", **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        self.last = held
        return held.seats

    def masks(self) -> dict[str, str]:
        return {f"{r.coach}/{r.seat}": m for r, m in self.model.occupancy("G1", "second").items()}


# --- the seat map ------------------------------------------------------------------------


def test_seat_map_orders_by_coach_row_letter_and_knows_positions() -> None:
    tails = seat_map("second", [SeatSpec("02", 1, "A"), SeatSpec("01", 2, "F"),
                                SeatSpec("01", 2, "A"), SeatSpec("01", 1, "C")])  # fmt: skip
    assert tails == [
        "00001|02|1|A|window",
        "00002|01|1|C|aisle",
        "00003|01|2|A|window",
        "00004|01|2|F|window",
    ]
    assert position_kind("sleeper", "L") == "lower"
    assert position_kind("business", "C") == "aisle"


@pytest.mark.parametrize(
    "seats",
    [
        [SeatSpec("01", 1, "E")],  # no E in second class
        [SeatSpec("01", 1, "A"), SeatSpec("01", 1, "A")],
        [SeatSpec("0|1", 1, "A")],
        [],
    ],
)
def test_seat_map_refuses_bad_maps(seats: list[SeatSpec]) -> None:
    with pytest.raises(ValueError):
        seat_map("second", seats)


def test_publish_is_idempotent_and_never_resets_sold_seats() -> None:
    bk = Booker()
    bk.hold(0, 3)
    assert bk.model.publish("G1", "second", 6, second_class()) is False
    assert bk.masks()["01/01A"] == "111000"
    with pytest.raises(AlreadyExists):
        bk.model.publish("G1", "second", 6, second_class(rows=3))


def test_hold_on_an_unpublished_run_or_a_bad_trip_is_refused() -> None:
    bk = Booker()
    with pytest.raises(NotFoundInInventory):
        bk.hold(0, 1, run="G2")
    with pytest.raises(InvalidSeatRequest):
        bk.hold(0, 7)
    with pytest.raises(InvalidSeatRequest):
        bk.hold(0, 2, party=6)


# --- best fit ------------------------------------------------------------------------------


def test_best_fit_fills_a_used_seat_up_to_the_request() -> None:
    bk = Booker(nseg=6)
    assert bk.hold(0, 3).seat == "01A"
    assert bk.hold(3, 6).seat == "01A"  # exactly fills 01A's gap
    assert bk.hold(1, 2).seat == "01B"  # 01A is full: a fresh seat
    assert bk.hold(2, 4).seat == "01B"  # borders 01B's sold segment 1
    assert bk.masks()["01/01B"] == "011100"


def test_best_fit_prefers_the_busiest_seat_among_equal_fits() -> None:
    bk = Booker(nseg=6)
    assert bk.hold(0, 2).seat == "01A"  # 110000
    assert bk.hold(1, 2).seat == "01B"  # 010000
    # Both border [2, 4) on the left; 01A has more sold segments.
    assert bk.hold(2, 4).seat == "01A"


def test_best_fit_keeps_empty_seats_for_long_trips() -> None:
    bk = Booker(nseg=4, seats=[SeatSpec("01", 1, "A"), SeatSpec("01", 1, "B")])
    bk.hold(0, 2)
    bk.hold(2, 4)  # goes next to the first, not onto the empty seat
    assert bk.hold(0, 4).seat == "01B"
    with pytest.raises(NoSeatForSegments):
        bk.hold(1, 2)


def test_a_tight_gap_beats_a_loose_one_at_equal_borders_and_busyness() -> None:
    bk = Booker(nseg=8)
    bk.hold(1, 2)  # 01A: 01000000
    bk.hold(5, 7)  # 01A: 01000110
    bk.hold(0, 3)  # 01B: 11100000
    # [3, 5): 01A's gap (2, 5) borders on the right, 01B's gap (3, 8) on the left; both
    # seats have 3 sold segments; 01A's gap is the tighter one.
    assert bk.hold(3, 5).seat == "01A"


# --- parties, adjacency, wishes --------------------------------------------------------------


def test_a_party_sits_together_in_one_row() -> None:
    bk = Booker(nseg=4)
    bk.hold(0, 4)  # 01A
    seats = bk.hold_all(0, 4, party=3)
    assert [s.seat for s in seats] == ["01B", "01C", "01D"]


def test_a_party_wish_puts_one_of_them_at_the_window() -> None:
    bk = Booker(nseg=4)
    bk.hold(0, 4)  # 01A
    seats = bk.hold_all(0, 4, party=3, wish="window")
    assert [s.seat for s in seats] == ["01C", "01D", "01F"]
    assert bk.last.wish_met


def test_a_solo_wish_is_honoured_when_a_seat_allows() -> None:
    bk = Booker(nseg=4)
    assert bk.hold(0, 4, wish="aisle").seat == "01C"
    assert bk.last.wish_met
    assert bk.hold(0, 4, wish="middle").seat == "01B"


def test_an_unmet_wish_still_holds_a_seat_and_says_so() -> None:
    bk = Booker(nseg=2, seats=[SeatSpec("01", 1, "A"), SeatSpec("01", 1, "B")])
    bk.hold(0, 2, wish="window")
    seat = bk.hold(0, 2, wish="window")
    assert seat.position == "middle"
    assert not bk.last.wish_met


def test_a_party_spans_seats_of_different_patterns_when_it_must() -> None:
    bk = Booker(nseg=4, seats=[SeatSpec("01", 1, "A"), SeatSpec("01", 1, "B")])
    bk.hold(0, 1)  # 01A: 1000
    bk.hold(0, 2)  # 01B: 1100
    seats = bk.hold_all(2, 3, party=2)  # one seat of each pattern, best fit first
    assert [s.seat for s in seats] == ["01B", "01A"]
    assert bk.masks() == {"01/01A": "1010", "01/01B": "1110"}


def test_all_or_nothing_changes_nothing_when_short() -> None:
    bk = Booker(nseg=3, seats=[SeatSpec("01", 1, "A"), SeatSpec("01", 1, "B")])
    bk.hold(0, 1)
    before, events = bk.masks(), list(bk.model.events)
    with pytest.raises(NoSeatForSegments):
        bk.hold_all(0, 2, party=2)
    assert bk.masks() == before
    assert bk.model.events == events
    assert len(bk.hold_all(1, 3, party=2)) == 2


# --- rules -------------------------------------------------------------------------------------


def test_one_live_ticket_per_passenger_per_run() -> None:
    m = SeatModel(hold_ms=HOLD_MS)
    m.publish("G1", "second", 4, second_class())
    held = m.hold("a", "G1", "second", 0, 1, ["alice"], now_ms=NOW, idempotency_key="1")
    with pytest.raises(PersonLimitReached) as refused:
        m.hold("a", "G1", "second", 2, 3, ["bob", "alice"], now_ms=NOW, idempotency_key="2")
    assert refused.value.fields == {"passenger": "alice"}
    m.cancel("a", held.hold_id, now_ms=NOW)
    m.hold("a", "G1", "second", 2, 3, ["bob", "alice"], now_ms=NOW, idempotency_key="3")


def test_an_idempotent_retry_gets_the_first_answer_and_no_second_seat() -> None:
    m = SeatModel(hold_ms=HOLD_MS)
    m.publish("G1", "second", 4, second_class())
    first = m.hold("a", "G1", "second", 0, 2, ["alice"], now_ms=NOW, idempotency_key="x")
    again = m.hold("a", "G1", "second", 0, 2, ["alice"], now_ms=NOW + 5, idempotency_key="x")
    assert again.replayed and again.hold_id == first.hold_id and again.seats == first.seats
    assert m.remaining("G1", "second")[0, 2] == 9
    with pytest.raises(IdempotencyKeyReused):
        m.hold("a", "G1", "second", 0, 3, ["alice"], now_ms=NOW, idempotency_key="x")


# --- life cycle --------------------------------------------------------------------------------


def _one_hold(nseg: int = 4) -> tuple[SeatModel, str]:
    m = SeatModel(hold_ms=HOLD_MS)
    m.publish("G1", "second", nseg, second_class())
    m.publish("G3", "second", nseg, second_class())
    held = m.hold("a", "G1", "second", 0, 2, ["alice"], now_ms=NOW, idempotency_key="x")
    return m, held.hold_id


def test_confirm_while_live_only_and_only_by_the_owner() -> None:
    m, hid = _one_hold()
    with pytest.raises(NotOwner):
        m.confirm("b", hid, now_ms=NOW)
    with pytest.raises(HoldExpired):
        m.confirm("a", hid, now_ms=NOW + HOLD_MS)
    assert m.confirm("a", hid, now_ms=NOW + HOLD_MS - 1).changed
    assert not m.confirm("a", hid, now_ms=NOW + HOLD_MS + 1).changed


def test_expire_only_past_the_deadline_and_only_once() -> None:
    m, hid = _one_hold()
    with pytest.raises(HoldNotDue):
        m.expire(hid, now_ms=NOW + HOLD_MS - 1)
    assert m.expire(hid, now_ms=NOW + HOLD_MS).state == "expired"
    assert m.remaining("G1", "second")[0, 2] == 10
    assert m.expire(hid, now_ms=NOW + HOLD_MS).changed is False
    with pytest.raises(HoldNotLive):
        m.confirm("a", hid, now_ms=NOW)
    assert [e for e, h in m.events if h == hid] == ["held", "expired"]


def test_cancel_a_confirmed_ticket_returns_its_seat_once() -> None:
    m, hid = _one_hold()
    m.confirm("a", hid, now_ms=NOW)
    assert m.cancel("a", hid, now_ms=NOW).changed
    again = m.cancel("a", hid, now_ms=NOW)
    assert (again.state, again.changed) == ("cancelled", False)
    assert m.remaining("G1", "second")[0, 4] == 10
    assert m.expire_due(m.seat_keys.run_shard("G1"), now_ms=NOW + 10 * HOLD_MS) == []


def test_expire_due_sweeps_only_held_holds_past_their_deadline() -> None:
    m, hid = _one_hold()
    late = m.hold("a", "G1", "second", 2, 4, ["bob"], now_ms=NOW + 10, idempotency_key="y")
    shard = m.seat_keys.run_shard("G1")
    assert [o.hold_id for o in m.expire_due(shard, now_ms=NOW + HOLD_MS)] == [hid]
    assert m.get_hold(late.hold_id) is not None
    assert m.get_hold(late.hold_id).state == "held"  # type: ignore[union-attr]


# --- 改签 ------------------------------------------------------------------------------------


def test_change_moves_a_confirmed_ticket_to_another_run() -> None:
    m, hid = _one_hold()
    m.confirm("a", hid, now_ms=NOW)
    new = m.change("a", hid, "G3", "second", 1, 4, now_ms=NOW, idempotency_key="c")
    assert new.state == "confirmed"
    assert m.get_hold(hid).state == "changed"  # type: ignore[union-attr]
    assert m.get_hold(new.hold_id).state == "confirmed"  # type: ignore[union-attr]
    assert m.remaining("G1", "second")[0, 4] == 10
    assert m.remaining("G3", "second")[1, 4] == 9
    # alice may book G1 again: her ticket there is gone
    m.hold("a", "G1", "second", 0, 1, ["alice"], now_ms=NOW, idempotency_key="z")
    assert [e for e, _ in m.events] == ["held", "confirmed", "held", "released", "confirmed",
                                        "held"]  # fmt: skip


def test_a_retried_change_answers_the_same() -> None:
    m, hid = _one_hold()
    m.confirm("a", hid, now_ms=NOW)
    new = m.change("a", hid, "G3", "second", 1, 4, now_ms=NOW, idempotency_key="c")
    again = m.change("a", hid, "G3", "second", 1, 4, now_ms=NOW + 1, idempotency_key="c")
    assert (again.hold_id, again.seats, again.state) == (new.hold_id, new.seats, "confirmed")


def test_change_needs_a_confirmed_ticket_and_a_free_seat() -> None:
    m, hid = _one_hold()
    with pytest.raises(HoldNotLive):
        m.change("a", hid, "G3", "second", 0, 1, now_ms=NOW, idempotency_key="c")
    m.confirm("a", hid, now_ms=NOW)
    with pytest.raises(InvalidSeatRequest):
        m.change("a", hid, "G1", "second", 0, 1, now_ms=NOW, idempotency_key="c")
    m.publish("G5", "second", 4, [SeatSpec("01", 1, "A")])
    m.hold("b", "G5", "second", 0, 4, ["bob"], now_ms=NOW, idempotency_key="b")
    with pytest.raises(NoSeatForSegments):
        m.change("a", hid, "G5", "second", 0, 1, now_ms=NOW, idempotency_key="c")
    assert m.get_hold(hid).state == "confirmed"  # type: ignore[union-attr]


def test_crash_before_the_commit_leaves_the_old_ticket_and_frees_the_new_seat() -> None:
    m, hid = _one_hold()
    m.confirm("a", hid, now_ms=NOW)
    new = m.hold("a", "G3", "second", 0, 2, ["alice"], now_ms=NOW, idempotency_key="c",
                 change_of=hid)  # fmt: skip
    # The pending hold can be neither paid nor cancelled on its own.
    with pytest.raises(ChangePending):
        m.confirm("a", new.hold_id, now_ms=NOW)
    with pytest.raises(ChangePending):
        m.cancel("a", new.hold_id, now_ms=NOW)
    with pytest.raises(ChangePending):
        m.expire_raw(new.hold_id, now_ms=NOW + HOLD_MS)
    # The sweeper aborts at the old ticket first, then frees the new seat.
    assert m.expire(new.hold_id, now_ms=NOW + HOLD_MS).state == "expired"
    assert m.get_hold(hid).state == "confirmed"  # type: ignore[union-attr]
    assert m.remaining("G3", "second")[0, 4] == 10
    with pytest.raises(ChangeAborted):
        m.decide_change(hid, new.hold_id, commit=True, account_id="a", now_ms=NOW + HOLD_MS)


def test_crash_after_the_commit_is_rolled_forward() -> None:
    m, hid = _one_hold()
    m.confirm("a", hid, now_ms=NOW)
    new = m.hold("a", "G3", "second", 0, 2, ["alice"], now_ms=NOW, idempotency_key="c",
                 change_of=hid)  # fmt: skip
    m.decide_change(hid, new.hold_id, commit=True, account_id="a", now_ms=NOW)
    assert m.expire(new.hold_id, now_ms=NOW + HOLD_MS).state == "confirmed"
    assert m.get_hold(hid).state == "changed"  # type: ignore[union-attr]
    assert m.remaining("G1", "second")[0, 4] == 10
    abort = m.decide_change(hid, new.hold_id, commit=False, account_id="", now_ms=NOW)
    assert (abort.state, abort.changed) == ("changed", False)


def test_every_refusal_code_maps_to_a_typed_error() -> None:
    for code in SeatCode:
        if code < 0:
            assert error_for(code).http_status >= 400
    with pytest.raises(ValueError):
        error_for(SeatCode.OK)
