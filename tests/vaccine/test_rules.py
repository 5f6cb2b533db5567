"""The pure booking-plan rules: dose order, intervals, series, age on each day, states."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservation.domain.vaccine import (
    Campaign,
    DoseInterval,
    PlannedDose,
    Product,
    check_plan,
    effective_state,
    fits_after,
    next_due,
)

COVID = Product("covid-inact", "COVID", 2, (DoseInterval(21, 42),), book_series=True)
HEPB = Product("hepb", "Hep B", 3, (DoseInterval(28, 60), DoseInterval(150, 240)))
ADULTS = Campaign(COVID, min_age=18, max_age=59)
HEPB_ALL = Campaign(HEPB)
D = dt.date(2026, 12, 1)


def plan(*items: tuple[int, int]) -> list[PlannedDose]:
    return [PlannedDose(dose, D + dt.timedelta(days=offset)) for dose, offset in items]


def code(
    campaign: Campaign,
    items: list[PlannedDose],
    *,
    birth: dt.date = dt.date(1990, 1, 1),
    given_days: list[dt.date] | None = None,
    booked: list[dt.date] | None = None,
    groups: tuple[str, ...] = (),
    moving: bool = False,
) -> str | None:
    refusal = check_plan(
        campaign,
        birth=birth,
        groups=groups,
        given=given_days or [],
        booked=booked or [],
        plan=items,
        moving=moving,
    )
    return None if refusal is None else refusal.code


def test_a_series_product_books_dose_one_with_dose_two() -> None:
    assert code(ADULTS, plan((1, 0), (2, 28))) is None
    assert code(ADULTS, plan((1, 0))) == "series_required"
    # Only a move may leave dose 1 alone (dose 2 released for lack of a fitting slot).
    assert code(ADULTS, plan((1, 0)), moving=True) is None


@pytest.mark.parametrize(("gap", "ok"), [(20, False), (21, True), (42, True), (43, False)])
def test_series_interval_edges(gap: int, ok: bool) -> None:
    assert (code(ADULTS, plan((1, 0), (2, gap))) is None) is ok


def test_dose_order_follows_given_and_booked_doses() -> None:
    assert code(HEPB_ALL, plan((2, 30))) == "dose_order"
    assert code(HEPB_ALL, plan((1, 0))) is None
    # Dose 1 booked (not yet given): dose 2 may be booked in its window after that day.
    assert code(HEPB_ALL, plan((2, 30)), booked=[D]) is None
    assert code(HEPB_ALL, plan((2, 10)), booked=[D]) == "dose_interval"
    # Dose 1 given: the window runs from the day it was given.
    assert code(HEPB_ALL, plan((2, 30)), given_days=[D]) is None
    assert code(HEPB_ALL, plan((3, 200)), given_days=[D], booked=[D + dt.timedelta(30)]) is None
    assert code(HEPB_ALL, plan((1, 0), (3, 200))) == "dose_order"
    assert code(HEPB_ALL, plan((2, 30), (1, 60))) == "dose_order"


def test_nothing_left_to_book() -> None:
    three = [D, D + dt.timedelta(30), D + dt.timedelta(200)]
    assert code(HEPB_ALL, plan((1, 300)), given_days=three) == "series_complete"
    assert code(HEPB_ALL, plan((3, 300)), given_days=three[:2], booked=three[2:]) == (
        "already_booked"
    )
    assert code(HEPB_ALL, []) == "empty_plan"


def test_age_on_every_planned_day() -> None:
    # 60 on 2026-12-20: dose 1 (at 59) fits the adults' band, dose 2 (at 60) does not.
    birth = dt.date(1966, 12, 20)
    assert code(ADULTS, plan((1, 0), (2, 28)), birth=birth) == "age_band"
    assert code(ADULTS, plan((1, 0), (2, 28)), birth=dt.date(1967, 1, 20)) is None


def test_priority_groups() -> None:
    frontline = Campaign(COVID, 18, 59, frozenset({"medical"}))
    assert code(frontline, plan((1, 0), (2, 28))) == "priority_group"
    assert code(frontline, plan((1, 0), (2, 28)), groups=("medical",)) is None


def test_next_due() -> None:
    assert next_due(HEPB, []) == (1, None, None)
    assert next_due(HEPB, [D]) == (2, D + dt.timedelta(28), D + dt.timedelta(60))
    assert next_due(COVID, [D, D + dt.timedelta(21)]) is None


@given(st.integers(0, 100))
def test_fits_after_is_the_window(gap: int) -> None:
    assert fits_after(COVID, D, 2, D + dt.timedelta(days=gap)) is (21 <= gap <= 42)


def test_effective_state() -> None:
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    later, earlier = now + dt.timedelta(minutes=5), now - dt.timedelta(seconds=1)
    assert effective_state("held", None, later, now) == "held"
    assert effective_state("held", None, earlier, now) == "expired"
    assert effective_state("held", "expired", later, now) == "expired"
    assert effective_state("confirmed", "confirmed", earlier, now) == "confirmed"
    assert effective_state("confirmed", "cancelled", earlier, now) == "cancelled"
    assert effective_state("given", "confirmed", earlier, now) == "given"
