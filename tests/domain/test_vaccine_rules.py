"""Vaccination eligibility and dose schedules (pure)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservation.domain.vaccine import (
    Campaign,
    DoseInterval,
    Product,
    age_on,
    check_eligibility,
    dose_window,
    next_dose,
    series_fits,
)

TWO_DOSE = Product("covid-x", "Two-dose", 2, (DoseInterval(21, 42),), book_series=True)
THREE_DOSE = Product("hepb", "Hepatitis B", 3, (DoseInterval(28, 60), DoseInterval(150, 240)))
ADULTS = Campaign(TWO_DOSE, min_age=18, max_age=59)


def test_age_counts_whole_years_on_the_appointment_day() -> None:
    assert age_on(dt.date(2000, 3, 1), dt.date(2018, 2, 28)) == 17
    assert age_on(dt.date(2000, 3, 1), dt.date(2018, 3, 1)) == 18
    assert age_on(dt.date(2000, 2, 29), dt.date(2018, 2, 28)) == 17


def test_age_band() -> None:
    refused = check_eligibility(
        ADULTS,
        birth=dt.date(2010, 1, 1),
        day=dt.date(2026, 12, 1),
        groups=[],
        doses_given=[],
        dose=1,
    )
    assert refused is not None and refused.code == "age_band"
    assert (
        check_eligibility(
            ADULTS,
            birth=dt.date(1990, 1, 1),
            day=dt.date(2026, 12, 1),
            groups=[],
            doses_given=[],
            dose=1,
        )
        is None
    )


def test_priority_groups() -> None:
    campaign = Campaign(TWO_DOSE, priority_groups=frozenset({"medical", "elderly"}))
    refused = check_eligibility(
        campaign,
        birth=dt.date(1990, 1, 1),
        day=dt.date(2026, 12, 1),
        groups=["teacher"],
        doses_given=[],
        dose=1,
    )
    assert refused is not None and refused.code == "priority_group"
    assert (
        check_eligibility(
            campaign,
            birth=dt.date(1990, 1, 1),
            day=dt.date(2026, 12, 1),
            groups=["medical"],
            doses_given=[],
            dose=1,
        )
        is None
    )


def test_dose_order_and_completion() -> None:
    given_once = [dt.date(2026, 11, 1)]
    refused = check_eligibility(
        ADULTS,
        birth=dt.date(1990, 1, 1),
        day=dt.date(2026, 11, 25),
        groups=[],
        doses_given=given_once,
        dose=1,
    )
    assert refused is not None and refused.code == "dose_order"
    done = check_eligibility(
        ADULTS,
        birth=dt.date(1990, 1, 1),
        day=dt.date(2026, 12, 25),
        groups=[],
        doses_given=[dt.date(2026, 10, 1), dt.date(2026, 11, 1)],
        dose=2,
    )
    assert done is not None and done.code == "series_complete"
    assert next_dose([], THREE_DOSE) == 1
    assert next_dose([dt.date(2026, 1, 1)] * 3, THREE_DOSE) is None


@pytest.mark.parametrize(("offset", "ok"), [(20, False), (21, True), (42, True), (43, False)])
def test_interval_edges(offset: int, ok: bool) -> None:
    first = dt.date(2026, 11, 1)
    result = check_eligibility(
        ADULTS,
        birth=dt.date(1990, 1, 1),
        day=first + dt.timedelta(days=offset),
        groups=[],
        doses_given=[first],
        dose=2,
    )
    assert (result is None) is ok
    if not ok:
        assert result is not None and result.code == "dose_interval"


def test_three_dose_windows() -> None:
    assert dose_window(dt.date(2026, 1, 1), THREE_DOSE, 2) == (
        dt.date(2026, 1, 29),
        dt.date(2026, 3, 2),
    )
    assert dose_window(dt.date(2026, 2, 1), THREE_DOSE, 3) == (
        dt.date(2026, 7, 1),
        dt.date(2026, 9, 29),
    )


@given(st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 1, 1)), st.integers(0, 60))
def test_series_fits_exactly_the_interval(first: dt.date, gap: int) -> None:
    assert series_fits(TWO_DOSE, first, first + dt.timedelta(days=gap)) is (21 <= gap <= 42)


def test_product_needs_one_interval_per_gap() -> None:
    with pytest.raises(ValueError):
        Product("bad", "Bad", 3, (DoseInterval(1, 2),))
