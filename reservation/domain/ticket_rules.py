"""Real-name rules of a train ticket order (pure; no I/O).

Rules, in plain words:
- An order carries 1 to ``max_party`` passengers (5), all or nothing.
- Only once: a passenger appears once in an order (the seat inventory also allows one live
  ticket per passenger per train run, checked atomically in ``seat_hold.lua``).
- Always: a passenger's live trips (held or confirmed) never overlap in time; trips that
  merely touch (one arrives when the next departs) do not overlap.
- After ``cancellations_per_day`` (3) cancellations of unpaid orders in one China calendar
  day, the account may not hold again until that day ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reservation.domain.clock import CHINA


@dataclass(frozen=True, slots=True)
class TicketRules:
    max_party: int = 5
    cancellations_per_day: int = 3


DEFAULT_RULES = TicketRules()


class TicketRuleError(ValueError):
    """A rule refused the order; ``code`` names it and ``detail`` carries its data."""

    code = "ticket_rule"

    def __init__(self, message: str, **detail: str | int) -> None:
        super().__init__(message)
        self.detail = detail


class BadPartySize(TicketRuleError):
    code = "party_size"


class DuplicateInOrder(TicketRuleError):
    code = "duplicate_passenger"


class OverlappingTrip(TicketRuleError):
    code = "overlapping_trip"


class CancellationLimit(TicketRuleError):
    code = "cancellation_limit"


@dataclass(frozen=True, slots=True)
class Trip:
    """A passenger's journey: the train run and when it leaves and arrives (aware times)."""

    run_id: str
    departs: dt.datetime
    arrives: dt.datetime

    def __post_init__(self) -> None:
        if self.departs.tzinfo is None or self.arrives.tzinfo is None:
            raise ValueError("trip times must carry a time zone")
        if self.arrives <= self.departs:
            raise ValueError("a trip arrives after it departs")

    def overlaps(self, other: Trip) -> bool:
        # Half-open intervals: a change of trains at one station is allowed.
        return self.departs < other.arrives and other.departs < self.arrives


def check_party(passengers: Sequence[str], rules: TicketRules = DEFAULT_RULES) -> None:
    """``passengers`` are passenger ids (or ID HMACs) in order."""
    if not 1 <= len(passengers) <= rules.max_party:
        raise BadPartySize(
            f"An order carries 1 to {rules.max_party} passengers.",
            max=rules.max_party,
            got=len(passengers),
        )
    seen: set[str] = set()
    for p in passengers:
        if p in seen:
            raise DuplicateInOrder("A passenger appears twice in this order.", passenger=p)
        seen.add(p)


def check_no_overlap(person: str, new_trip: Trip, existing: Iterable[Trip]) -> None:
    """Refuse ``new_trip`` for ``person`` if it overlaps one of their live trips."""
    for trip in existing:
        if trip.overlaps(new_trip):
            raise OverlappingTrip(
                "This passenger already travels at that time.",
                passenger=person,
                run_id=trip.run_id,
            )


def china_day_bounds(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the China calendar day containing ``now``."""
    local = now.astimezone(CHINA)
    start = dt.datetime.combine(local.date(), dt.time(), tzinfo=CHINA)
    return start, start + dt.timedelta(days=1)


def cancellations_today(cancelled_at: Iterable[dt.datetime], now: dt.datetime) -> int:
    start, end = china_day_bounds(now)
    return sum(1 for t in cancelled_at if start <= t < end)


def check_cancellation_limit(
    cancelled_at: Iterable[dt.datetime], now: dt.datetime, rules: TicketRules = DEFAULT_RULES
) -> None:
    """``cancelled_at``: when the account cancelled unpaid orders (any days; only today's
    count). Refuses from the ``cancellations_per_day``-th cancellation on, until midnight
    China time."""
    count = cancellations_today(cancelled_at, now)
    if count >= rules.cancellations_per_day:
        _, end = china_day_bounds(now)
        raise CancellationLimit(
            f"{count} cancellations today: new orders are possible again tomorrow.",
            count=count,
            until=end.isoformat(),
        )
