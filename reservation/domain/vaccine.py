"""Vaccination rules, pure: eligibility per campaign and dose schedules.

Always: a person's age is computed from the birth date in their ID number, on the day of
the appointment (not the day of booking).
Always: dose n+1 is booked only within [min_interval, max_interval] days after dose n;
when a product requires it, dose 1 and dose 2 are booked together or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DoseInterval:
    min_days: int
    max_days: int


@dataclass(frozen=True, slots=True)
class Product:
    code: str
    name: str
    doses: int
    # intervals[i] is the window between dose i+1 and dose i+2.
    intervals: Sequence[DoseInterval] = ()
    # Dose 1 may only be booked together with dose 2 (one atomic series).
    book_series: bool = False

    def __post_init__(self) -> None:
        if len(self.intervals) != max(0, self.doses - 1):
            raise ValueError(f"{self.code}: {self.doses} doses need {self.doses - 1} intervals")


@dataclass(frozen=True, slots=True)
class Campaign:
    product: Product
    min_age: int = 0
    max_age: int = 200
    # Empty: open to everyone of the age band; else only these priority groups.
    priority_groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Ineligible:
    code: str
    message: str


def age_on(birth: dt.date, day: dt.date) -> int:
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def next_dose(doses_given: Iterable[dt.date], product: Product) -> int | None:
    """The number (1-based) of the next dose due, or None when the series is complete."""
    count = len(list(doses_given))
    return count + 1 if count < product.doses else None


def dose_window(previous: dt.date, product: Product, dose: int) -> tuple[dt.date, dt.date]:
    """The days on which dose ``dose`` (>= 2) may be given after ``previous``."""
    interval = product.intervals[dose - 2]
    return (
        previous + dt.timedelta(days=interval.min_days),
        previous + dt.timedelta(days=interval.max_days),
    )


def check_eligibility(
    campaign: Campaign,
    *,
    birth: dt.date,
    day: dt.date,
    groups: Iterable[str],
    doses_given: Sequence[dt.date],
    dose: int,
) -> Ineligible | None:
    """Whether this person may book ``dose`` of the campaign's product on ``day``."""
    age = age_on(birth, day)
    if not campaign.min_age <= age <= campaign.max_age:
        return Ineligible(
            "age_band",
            f"This campaign is for ages {campaign.min_age}–{campaign.max_age}; "
            f"you will be {age} on that day.",
        )
    if campaign.priority_groups and not (set(groups) & campaign.priority_groups):
        return Ineligible("priority_group", "This campaign is open to priority groups only.")
    expected = next_dose(doses_given, campaign.product)
    if expected is None:
        return Ineligible("series_complete", "All doses of this product were given.")
    if dose != expected:
        return Ineligible("dose_order", f"The next dose due is dose {expected}.")
    if dose >= 2:
        first, last = dose_window(doses_given[-1], campaign.product, dose)
        if not first <= day <= last:
            return Ineligible(
                "dose_interval",
                f"Dose {dose} must be between {first.isoformat()} and {last.isoformat()}.",
            )
    return None


def series_fits(product: Product, first_day: dt.date, second_day: dt.date) -> bool:
    """Whether a (dose 1, dose 2) pair booked together respects the interval."""
    start, end = dose_window(first_day, product, 2)
    return start <= second_day <= end
