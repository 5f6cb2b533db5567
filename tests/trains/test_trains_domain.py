"""Pure train rules: fares, segments, times, seat layouts, the sale window."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from inventory.seat_model import position_kind, seat_map
from reservation.domain.clock import CHINA
from reservation.domain.fares import fare
from reservation.domain.sale_window import Refusal, SaleWindow, parse_release
from reservation.domain.trains import (
    CoachSection,
    Composition,
    ServiceCalendar,
    Stop,
    Train,
    TrainRun,
    check_composition,
    check_train,
    format_duration,
    offsets_from_clock,
    service_date_for,
)
from reservation.trains_seed import D_SLEEPER, G8, Z_SLEEPER, demo_trains


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, second, tzinfo=CHINA)


# --- fares --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seat_class", "km", "kind", "expected"),
    [
        ("second", 1318, "G", "606.5"),  # 606.28 rounds up to the half yuan
        ("first", 1318, "G", "975.5"),  # 975.32
        ("business", 1318, "G", "1924.5"),  # 1924.28
        ("second", 100, "G", "46.0"),
        ("second", 101, "G", "46.5"),  # 46.46
        ("second", 1318, "D", "485.0"),  # 485.024: the D factor 0.8
        ("sleeper", 1225, "Z", "455.5"),  # 455.70 -> 455.5 (nearest half)
        ("second", 10, "G", "10.0"),  # 4.60: the minimum fare
    ],
)
def test_fare_rule(seat_class: str, km: int, kind: str, expected: str) -> None:
    assert fare(seat_class, km, kind) == Decimal(expected)


def test_fare_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive distance"):
        fare("second", 0)
    with pytest.raises(ValueError, match="no fare"):
        fare("standing", 10)


# --- timetables ---------------------------------------------------------------------------

OVERNIGHT = Train(
    "Z1",
    "Z",
    "c",
    departs_min=22 * 60,
    stops=(Stop("AAA", None, 0, 0), Stop("BBB", 180, 185, 300), Stop("CCC", 570, None, 900)),
)


def test_segments_durations_and_times() -> None:
    g1 = next(t for t in demo_trains() if t.number == "G1")
    assert [s.station for s in g1.stops] == ["VNP", "JGK", "NKH", "AOH"]
    assert g1.segment("JGK", "NKH") == (1, 2)
    assert g1.segment("VNP", "AOH") == (0, 3)
    assert g1.segment("NKH", "JGK") is None  # wrong direction
    assert g1.segment("VNP", "XXX") is None
    assert g1.distance_km(1, 3) == 912
    assert g1.duration_min(0, 3) == 257
    assert format_duration(257) == "4:17"
    run = TrainRun("Z1-20261123", OVERNIGHT, dt.date(2026, 11, 23))
    assert run.departure_at(0) == at(23, 22)
    assert run.arrival_at(0) is None
    assert run.departure_at(1) == at(24, 1, 5)
    assert run.arrival_at(2) == at(24, 7, 30)
    assert run.departure_at(2) is None
    assert OVERNIGHT.duration_min(1, 2) == 385


def test_overnight_service_date_and_clock_rollover() -> None:
    assert service_date_for(OVERNIGHT, 1, dt.date(2026, 11, 24)) == dt.date(2026, 11, 23)
    assert service_date_for(OVERNIGHT, 0, dt.date(2026, 11, 24)) == dt.date(2026, 11, 24)
    clocks = [(None, 22 * 60), (60, 65), (7 * 60 + 30, None)]
    assert offsets_from_clock(22 * 60, clocks) == [(None, 0), (180, 185), (570, None)]


def test_calendar() -> None:
    cal = ServiceCalendar(dt.date(2026, 11, 23), dt.date(2026, 11, 30), "135")
    assert cal.runs_on(dt.date(2026, 11, 23))  # a Monday
    assert not cal.runs_on(dt.date(2026, 11, 24))
    assert not cal.runs_on(dt.date(2026, 12, 2))  # a Wednesday, after the end


def test_check_train_lists_every_problem() -> None:
    bad = Train(
        "G12",
        "D",
        "nope",
        departs_min=600,
        stops=(Stop("AAA", None, 0, 0), Stop("ZZZ", 50, 40, 100), Stop("AAA", 90, None, 80)),
    )
    errors = {(e.field, e.message) for e in check_train(bad, stations={"AAA"}, compositions=set())}
    assert errors == {
        ("kind", "train G12 is of kind G"),
        ("composition", "unknown composition 'nope'"),
        ("stops[1].station", "unknown station 'ZZZ'"),
        ("stops[1].depart", "times go backwards"),
        ("stops[2].station", "the train calls here twice"),
        ("stops[2].km", "distances must strictly increase"),
    }
    assert check_train(OVERNIGHT, stations={"AAA", "BBB", "CCC"}, compositions={"c"}) == []


# --- seat layouts -------------------------------------------------------------------------


def test_g_train_layout() -> None:
    maps = G8.seat_maps()
    assert list(maps) == ["business", "first", "second"]
    assert G8.capacity() == {"business": 9, "first": 28, "second": 560}
    second = maps["second"]
    assert [s.letter for s in second[:6]] == ["A", "B", "C", "D", "F", "A"]
    assert second[0].coach == "02" and second[-1] == ("08", 17, "F")
    kinds = {s.letter: position_kind("second", s.letter) for s in second[:5]}
    assert kinds == {"A": "window", "B": "middle", "C": "aisle", "D": "aisle", "F": "window"}
    assert [s.letter for s in maps["first"][:4]] == ["A", "C", "D", "F"]
    assert maps["first"][0] == ("01", 4, "A")  # first class follows business in coach 01
    assert [s.letter for s in maps["business"][:3]] == ["A", "C", "F"]
    # The engine accepts the maps as they are.
    assert len(seat_map("second", second)) == 560


def test_sleeper_layouts() -> None:
    assert Z_SLEEPER.capacity() == {"sleeper": 528}
    first_compartment = Z_SLEEPER.seat_maps()["sleeper"][:6]
    assert [(s.row, s.letter) for s in first_compartment] == [
        (1, "L"),
        (1, "M"),
        (1, "U"),
        (2, "L"),
        (2, "M"),
        (2, "U"),
    ]
    assert position_kind("sleeper", "L") == "lower"
    assert D_SLEEPER.capacity() == {"second": 85, "sleeper": 280}
    assert [s.letter for s in D_SLEEPER.seat_maps()["sleeper"][:4]] == ["L", "U", "L", "U"]


def test_check_composition() -> None:
    bad = Composition(
        "x",
        (CoachSection("01", "first", "2+3", rows=2), CoachSection("1", "second", "2+3", rows=50)),
    )
    assert {(e.field, e.message) for e in check_composition(bad)} == {
        ("coaches[0].layout", "layout 2+3 is second"),
        ("coaches[1].coach", "two digits, e.g. 01"),
        ("coaches[1].rows", "1..40 rows, first row 1..40"),
    }
    assert check_composition(G8) == []


def test_demo_network_size() -> None:
    trains = demo_trains()
    assert len(trains) == 100
    assert len({t.number for t in trains}) == 100
    assert sum(t.kind in ("D", "Z") and t.departs_min >= 19 * 60 for t in trains) == 12


# --- sale window --------------------------------------------------------------------------

WINDOW = SaleWindow(days=15, release=dt.time(8, 0))


def test_horizon_and_daily_release() -> None:
    assert WINDOW.first_date(at(23, 7, 59)) == dt.date(2026, 11, 23)
    assert WINDOW.last_date(at(23, 7, 59, 59)) == dt.date(2026, 12, 6)
    assert WINDOW.last_date(at(23, 8)) == dt.date(2026, 12, 7)
    assert WINDOW.date_refusal(dt.date(2026, 12, 7), at(23, 7, 59)) is Refusal.NOT_RELEASED
    assert WINDOW.date_refusal(dt.date(2026, 12, 7), at(23, 8)) is None
    assert WINDOW.date_refusal(dt.date(2026, 12, 8), at(23, 23, 59)) is Refusal.NOT_RELEASED
    assert WINDOW.date_refusal(dt.date(2026, 11, 22), at(23, 8)) is Refusal.PAST
    assert WINDOW.date_refusal(dt.date(2026, 11, 23), at(23, 23, 59)) is None
    assert WINDOW.release_at(dt.date(2026, 12, 7)) == at(23, 8)
    # China's date, whatever the zone of ``now``: 23:30 UTC is 07:30 the next day.
    utc = dt.datetime(2026, 11, 22, 23, 30, tzinfo=dt.UTC)
    assert WINDOW.first_date(utc) == dt.date(2026, 11, 23)
    assert WINDOW.last_date(utc) == dt.date(2026, 12, 6)


def test_departed_cutoff() -> None:
    departure = at(23, 10)
    assert WINDOW.trip_refusal(departure, at(23, 9, 59, 59)) is None
    assert WINDOW.trip_refusal(departure, at(23, 10)) is Refusal.DEPARTED
    # Not yet released: the date is checked too.
    assert WINDOW.trip_refusal(at(8, 10) + dt.timedelta(days=30), at(23, 9)) is (
        Refusal.NOT_RELEASED
    )


def test_release_setting() -> None:
    assert parse_release("07:30") == dt.time(7, 30)
    for bad in ("25:00", "8", "x:y"):
        with pytest.raises(ValueError, match="HH:MM"):
            parse_release(bad)
    with pytest.raises(ValueError, match="at least one day"):
        SaleWindow(days=0)


def test_a_time_read_as_the_next_day_by_mistake_is_refused() -> None:
    # 21:30 then 21:10: rolls over to the next day, 23 h 40 min later; surely a typo.
    offsets = offsets_from_clock(21 * 60 + 30, [(None, 21 * 60 + 30), (21 * 60 + 10, None)])
    assert offsets == [(None, 0), (1420, None)]
    train = Train(
        "G9", "G", "c", 21 * 60 + 30, (Stop("AAA", None, 0, 0), Stop("BBB", 1420, None, 9))
    )
    assert [
        (e.field, e.message)
        for e in check_train(train, stations={"AAA", "BBB"}, compositions={"c"})
    ] == [("stops[1].arrive", "more than 12 h after the previous time")]
