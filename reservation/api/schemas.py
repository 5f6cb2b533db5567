"""Request bodies and query strings, validated by pydantic (also the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

Phone = Annotated[str, StringConstraints(pattern=r"^1\d{10}$")]
IdNumber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=18, max_length=18)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=64)]

# Every instant is stored and computed in UTC (Postgres timestamptz, epoch ms in Redis), so
# one must have a UTC form with room for date arithmetic: "9999-12-31T23:59-14:00" or
# "0001-01-01T00:00+14:00" have none and failed in the driver (500). The bounds are far
# outside any sale, slot or deadline.
INSTANT_MIN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
INSTANT_MAX = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)


def _within_bounds(value: dt.datetime) -> dt.datetime:
    if not INSTANT_MIN <= value < INSTANT_MAX:  # aware comparison: no UTC conversion needed
        raise ValueError("must be between 1970-01-01 and 2999-12-31 (UTC)")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_within_bounds)]


def _day_within_bounds(value: dt.date) -> dt.date:
    if not INSTANT_MIN.date() <= value < INSTANT_MAX.date():
        raise ValueError("must be between 1970-01-01 and 2999-12-31")
    return value


# A calendar day with room for date arithmetic (a sale window opens days before it):
# "0001-01-01" overflowed Python's date range (500).
Day = Annotated[dt.date, AfterValidator(_day_within_bounds)]


# Categories that draw nothing on their own: controls, format characters (U+202E, U+FEFF,
# zero-width spaces), separators (spaces of every width), combining marks, private use,
# surrogates and unassigned code points.
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Co", "Cs", "Cn"})


def _visible(value: str) -> str:
    if not any(unicodedata.category(ch) not in _INVISIBLE for ch in value):
        raise ValueError("must contain at least one visible character")
    return value


# A person's real name, as printed on a ticket or a registration: 1 to 50 characters, at
# least one of them visible ("\u202e\ufeff" or spaces alone are refused).
PersonName = Annotated[
    str, StringConstraints(min_length=1, max_length=50), AfterValidator(_visible)
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegisterCitizen(Strict):
    name: PersonName
    phone: Phone = Field(description="Mainland mobile number, 11 digits starting with 1")
    id_number: IdNumber = Field(description="18-digit resident ID number (GB 11643)")


class SignIn(Strict):
    phone: Phone
    id_number: IdNumber


# A resource's details are stored as jsonb, encoded by orjson, which refuses more than 254
# levels of nesting: a deeper object failed in the driver (500). Details are a flat card
# (department, fee): a few levels are plenty.
DETAILS_MAX_DEPTH = 8


def _shallow(details: dict[str, Any]) -> dict[str, Any]:
    stack: list[tuple[Any, int]] = [(details, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, dict | list):
                if depth >= DETAILS_MAX_DEPTH:
                    raise ValueError(f"nested deeper than {DETAILS_MAX_DEPTH} levels")
                stack.append((child, depth + 1))
    return details


class ResourceIn(Strict):
    code: Code = Field(description="The provider's own code for the resource, e.g. dr-li")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: Literal["doctor", "clinic", "vaccination", "other"] = "doctor"
    details: Annotated[dict[str, Any], AfterValidator(_shallow)] = Field(default_factory=dict)


class SlotIn(Strict):
    resource_code: Code
    starts_at: Instant
    ends_at: Instant
    capacity: int = Field(ge=0, le=1_000_000)
    release_at: Instant = Field(description="When the slot becomes bookable")


class PublishSlots(Strict):
    resources: list[ResourceIn] = Field(default_factory=list, max_length=1000)
    slots: list[SlotIn] = Field(max_length=5000)


class HoldSlot(Strict):
    slot_id: ObjectId


class SlotQuery(Strict):
    provider_id: ObjectId | None = None
    resource_id: ObjectId | None = None
    day: Day | None = None


class DayQuery(Strict):
    day: Day
