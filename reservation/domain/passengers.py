"""The account's passenger list (pure; no I/O).

Rules, in plain words:
- Always: a passenger's resident ID number is validated (GB 11643 check digit and birth
  date) by :mod:`reservation.domain.identity` and kept only as a keyed HMAC plus a mask.
- An account lists at most ``MAX_PASSENGERS`` people (15), the account holder included.
- Only once: an ID number appears at most once in one account's list.
- A child passenger is under ``CHILD_MAX_AGE`` (14) on the day they are added.
- The account holder's own entry cannot be removed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from reservation.domain.identity import InvalidIdNumber, ResidentId, parse_resident_id

MAX_PASSENGERS = 15
CHILD_MAX_AGE = 14


class PassengerKind(StrEnum):
    ADULT = "adult"
    CHILD = "child"
    STUDENT = "student"


class PassengerRuleError(ValueError):
    """A passenger-list rule refused the change; ``field`` names the input at fault."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class ListFull(PassengerRuleError):
    pass


class DuplicatePassenger(PassengerRuleError):
    pass


class BadIdNumber(PassengerRuleError):
    pass


class KindNotAllowed(PassengerRuleError):
    pass


@dataclass(frozen=True, slots=True)
class NewPassenger:
    name: str
    kind: PassengerKind
    resident_id: ResidentId


def age_on(birth: dt.date, day: dt.date) -> int:
    """Completed years on ``day`` (a 29 February birthday counts from 1 March)."""
    years = day.year - birth.year
    return years - 1 if (day.month, day.day) < (birth.month, birth.day) else years


def check_new_passenger(
    *,
    name: str,
    id_number: str,
    kind: PassengerKind,
    existing_hmacs: Collection[str],
    hmac_key: bytes,
    today: dt.date,
    max_passengers: int = MAX_PASSENGERS,
) -> NewPassenger:
    """Validate one addition to a list that currently holds ``existing_hmacs``; raises a
    :class:`PassengerRuleError` naming the rule, else returns what to store."""
    try:
        rid = parse_resident_id(id_number, hmac_key=hmac_key, today=today)
    except InvalidIdNumber as exc:
        raise BadIdNumber("invalid_id_number", str(exc), "id_number") from exc
    if rid.hmac_hex in existing_hmacs:
        raise DuplicatePassenger(
            "duplicate_passenger", "This ID number is already on the passenger list.", "id_number"
        )
    if len(existing_hmacs) >= max_passengers:
        raise ListFull(
            "passenger_list_full",
            f"A passenger list holds at most {max_passengers} people.",
            "id_number",
        )
    if kind is PassengerKind.CHILD and age_on(rid.birth_date, today) >= CHILD_MAX_AGE:
        raise KindNotAllowed(
            "kind_not_allowed",
            f"A child passenger must be under {CHILD_MAX_AGE} years old.",
            "kind",
        )
    return NewPassenger(name=name, kind=kind, resident_id=rid)


def holder_kind(birth: dt.date, today: dt.date) -> PassengerKind:
    """The kind the account holder's own entry gets when it is created for them."""
    return PassengerKind.CHILD if age_on(birth, today) < CHILD_MAX_AGE else PassengerKind.ADULT
