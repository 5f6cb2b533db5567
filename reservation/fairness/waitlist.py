"""Waitlist (候补) rules, pure: no I/O.

- An order waits on *units*: a (train run, seat class) for a trip [a, b), or a (resource,
  day) for slots. Its choices are ranked by the citizen's preference.
- The line is the filing order (``seq``). Freed places go to the first waiting order, in
  that line, that the place can serve whole (all passengers of a train order at once);
  an order the place cannot serve is passed over, not blocked behind.
- A seat piece serves a trip when its segments contain the trip's. Among pieces, the
  tightest fit goes first (long free runs stay whole for long trips), then by seat order
  (neighbours for a party).
- An order's position in a unit's line = 1 + the waiting orders filed before it there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_CHOICES = 10  # ranked (run, class) alternatives of a train order
MAX_RESOURCES = 20  # resources of a slot order
MAX_UNITS = 100  # resources x days of a slot order
MAX_WAITING_PER_ACCOUNT = 6  # orders one account may have waiting at once


class WaitlistRuleError(ValueError):
    def __init__(self, code: str, message: str, **detail: object) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SeatPiece:
    """What the matching needs of a cooling seat piece."""

    piece_id: str
    a: int
    b: int
    ordinal: str  # "00042": seat order within the unit


def choose_pieces(pieces: Iterable[SeatPiece], a: int, b: int, n: int) -> list[str] | None:
    """``n`` pieces (distinct seats) that each contain the trip [a, b), or None.

    Tightest first (least left over), then seat order; pieces of one seat never overlap
    (a seat-segment is sold once), so distinct pieces that all contain [a, b) are distinct
    seats."""
    fitting = sorted(
        (p for p in pieces if p.a <= a and b <= p.b),
        key=lambda p: ((p.b - p.a) - (b - a), p.ordinal, p.piece_id),
    )
    if len(fitting) < n:
        return None
    return [p.piece_id for p in fitting[:n]]


def check_deadline(filed: dt.datetime, deadline: dt.datetime, max_days: int) -> None:
    if deadline <= filed:
        raise WaitlistRuleError("bad_deadline", "The deadline must be in the future.")
    if deadline - filed > dt.timedelta(days=max_days):
        raise WaitlistRuleError(
            "bad_deadline", f"The deadline may be at most {max_days} days ahead.", max_days=max_days
        )


def slot_days(first: dt.date, last: dt.date, today: dt.date, max_days: int) -> list[dt.date]:
    """The days of a slot order, ``first`` to ``last`` included."""
    if last < first:
        raise WaitlistRuleError("bad_days", "The day range ends before it starts.")
    if first < today:
        raise WaitlistRuleError("bad_days", "The day range starts in the past.")
    span = (last - first).days + 1
    if span > max_days:
        raise WaitlistRuleError(
            "bad_days", f"The day range spans at most {max_days} days.", max_days=max_days
        )
    return [first + dt.timedelta(days=i) for i in range(span)]


def check_slot_choices(resources: Sequence[str], days: Sequence[dt.date]) -> None:
    if not resources or len(resources) > MAX_RESOURCES:
        raise WaitlistRuleError(
            "bad_choices", f"A slot order names 1 to {MAX_RESOURCES} resources."
        )
    if len(set(resources)) != len(resources):
        raise WaitlistRuleError("bad_choices", "A resource appears twice.")
    if len(resources) * len(days) > MAX_UNITS:
        raise WaitlistRuleError(
            "bad_choices", f"At most {MAX_UNITS} (resource, day) pairs per order."
        )


def check_train_choices(choices: Sequence[tuple[str, str]]) -> None:
    if not choices or len(choices) > MAX_CHOICES:
        raise WaitlistRuleError(
            "bad_choices", f"A train order lists 1 to {MAX_CHOICES} (run, class) choices."
        )
    if len(set(choices)) != len(choices):
        raise WaitlistRuleError("bad_choices", "A (run, class) choice appears twice.")


def sold_out(remaining: int, party: int) -> bool:
    """A train choice is sold out for a party when fewer seats than passengers are free on
    every segment of the trip (余票 < party): that party cannot book it now."""
    return remaining < party


def position(my_seq: int, waiting_seqs: Iterable[int]) -> int:
    """1 + the waiting orders filed before mine on the same unit."""
    return 1 + sum(1 for s in waiting_seqs if s < my_seq)
