"""When a train ticket may be sold (pure). The rule, also in docs/trains.md:

- Always: the dates on sale are today .. today + (days - 1), China time, by the date the
  train leaves the citizen's boarding station.
- The last of those dates is released each day at ``release`` (e.g. 08:00): before that
  moment the horizon ends one day earlier.
- Only until the train has left the boarding station: from its departure there on, that
  trip is no longer sold (later stations of the same run still are).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from reservation.domain.clock import CHINA


class Refusal(StrEnum):
    PAST = "past"  # the date is before today
    NOT_RELEASED = "not_released"  # beyond the horizon, or its release time has not come
    DEPARTED = "departed"  # the train has left the boarding station


def parse_release(text: str) -> dt.time:
    """``"HH:MM"`` -> a time; ValueError otherwise (a setting is checked at start-up)."""
    try:
        hour, minute = (int(part) for part in text.split(":"))
        return dt.time(hour, minute)
    except ValueError:
        raise ValueError(f"a release time is HH:MM, not {text!r}") from None


@dataclass(frozen=True, slots=True)
class SaleWindow:
    days: int = 15
    release: dt.time = dt.time(8, 0)

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("the sale horizon is at least one day")

    def first_date(self, now: dt.datetime) -> dt.date:
        return now.astimezone(CHINA).date()

    def last_date(self, now: dt.datetime) -> dt.date:
        local = now.astimezone(CHINA)
        last = local.date() + dt.timedelta(days=self.days - 1)
        if local.time() < self.release:
            last -= dt.timedelta(days=1)
        return last

    def release_at(self, day: dt.date) -> dt.datetime:
        """When tickets for boarding on ``day`` go on sale."""
        opens = day - dt.timedelta(days=self.days - 1)
        return dt.datetime.combine(opens, self.release, tzinfo=CHINA)

    def date_refusal(self, day: dt.date, now: dt.datetime) -> Refusal | None:
        if day < self.first_date(now):
            return Refusal.PAST
        if day > self.last_date(now):
            return Refusal.NOT_RELEASED
        return None

    def trip_refusal(self, boarding_departure: dt.datetime, now: dt.datetime) -> Refusal | None:
        """Why a trip leaving its boarding station at ``boarding_departure`` cannot be
        sold now, or None if it can."""
        if now >= boarding_departure:
            return Refusal.DEPARTED
        return self.date_refusal(boarding_departure.astimezone(CHINA).date(), now)
