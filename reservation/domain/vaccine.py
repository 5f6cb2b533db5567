"""Vaccination rules, pure: eligibility per campaign and dose schedules.

Always: a person's age is computed from the birth date in their ID number, on the day of
the appointment (not the day of booking).
Always: dose n+1 is booked only within [min_interval, max_interval] days after dose n;
when a product requires it, dose 1 and dose 2 are booked together or not at all.
"""

from __future__ import annotations

import datetime as dt
import itertools
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


# --- booking plans: one or more consecutive doses booked at once ------------------------


@dataclass(frozen=True, slots=True)
class PlannedDose:
    dose: int
    day: dt.date


def check_plan(
    campaign: Campaign,
    *,
    birth: dt.date,
    groups: Iterable[str],
    given: Sequence[dt.date],
    booked: Sequence[dt.date],
    plan: Sequence[PlannedDose],
    moving: bool = False,
) -> Ineligible | None:
    """Whether this person may book ``plan`` (consecutive doses, each with its day).

    ``given`` are the days of the doses already given (dose 1 first), ``booked`` the days
    of the next doses already booked and still live (they follow the given ones).

    Always: the plan starts at the first dose neither given nor booked (dose order: dose 2
    is bookable only once dose 1 is given or booked); each dose falls in its window after
    the dose before it (given, booked or planned); the person is in the campaign's age band
    on every planned day. Only together: dose 1 and dose 2 of a ``book_series`` product,
    except when ``moving`` an appointment left dose 2 without a fitting slot (released).
    """
    product = campaign.product
    if not plan:
        return Ineligible("empty_plan", "Choose at least one slot.")
    groups = set(groups)
    if campaign.priority_groups and not (groups & campaign.priority_groups):
        return Ineligible("priority_group", "This campaign is open to priority groups only.")
    expected = len(given) + len(booked) + 1
    if expected > product.doses:
        if booked:
            return Ineligible("already_booked", "Every remaining dose is already booked.")
        return Ineligible("series_complete", "All doses of this product were given.")
    if plan[0].dose != expected:
        return Ineligible("dose_order", f"The next dose to book is dose {expected}.")
    for earlier, later in itertools.pairwise(plan):
        if later.dose != earlier.dose + 1:
            return Ineligible("dose_order", "Doses of one booking must be consecutive.")
    if plan[-1].dose > product.doses:
        return Ineligible("too_many_doses", f"This product has {product.doses} doses.")
    needs_pair = product.book_series and product.doses >= 2 and not moving
    if needs_pair and plan[0].dose == 1 and len(plan) < 2:
        return Ineligible(
            "series_required", "This vaccine's dose 1 is booked only together with dose 2."
        )
    previous = (list(given) + list(booked))[-1] if (given or booked) else None
    for item in plan:
        age = age_on(birth, item.day)
        if not campaign.min_age <= age <= campaign.max_age:
            return Ineligible(
                "age_band",
                f"This campaign is for ages {campaign.min_age}–{campaign.max_age}; "
                f"the person will be {age} on {item.day.isoformat()}.",
            )
        if previous is not None and item.dose >= 2:
            first, last = dose_window(previous, product, item.dose)
            if not first <= item.day <= last:
                return Ineligible(
                    "dose_interval",
                    f"Dose {item.dose} must be between {first.isoformat()} and {last.isoformat()}.",
                )
        previous = item.day
    return None


def next_due(
    product: Product, given: Sequence[dt.date]
) -> tuple[int, dt.date | None, dt.date | None] | None:
    """The next dose due and its window (None, None for dose 1: any day), or None when
    the series is complete."""
    dose = next_dose(given, product)
    if dose is None:
        return None
    if dose == 1:
        return 1, None, None
    first, last = dose_window(given[-1], product, dose)
    return dose, first, last


def fits_after(product: Product, previous: dt.date, dose: int, day: dt.date) -> bool:
    """Whether dose ``dose`` on ``day`` is in its window after the dose before it."""
    first, last = dose_window(previous, product, dose)
    return first <= day <= last


LIVE_APPOINTMENT_STATES = frozenset({"held", "confirmed"})


def effective_state(
    state: str, booking_state: str | None, deadline: dt.datetime, now: dt.datetime
) -> str:
    """An appointment's state, also when the inventory ended it on its own: an unpaid
    hold past its deadline is expired even before the sweeper and persister said so."""
    if state == "held":
        if booking_state in ("cancelled", "expired"):
            return booking_state
        if now >= deadline:
            return "expired"
    if state == "confirmed" and booking_state == "cancelled":
        return "cancelled"
    return state
