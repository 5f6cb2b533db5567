"""Vaccination request bodies and query strings (pydantic; also the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, StringConstraints

from reservation.api.schemas import Day, IdNumber, Instant, ObjectId, Strict

ProductCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
GroupCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


class SessionRow(Strict):
    """One time slot of a day's session. The same fields are the columns of the CSV form:
    ``product,day,start,end,capacity[,release_at]``."""

    product: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="Product code, e.g. covid-inact"
    )
    day: Day
    start: dt.time = Field(description="Local time (UTC+8), HH:MM")
    end: dt.time = Field(description="Local time (UTC+8), HH:MM")
    capacity: int = Field(ge=0, le=1_000_000, description="Places of this product")
    release_at: Instant | None = Field(
        default=None, description="When the slot becomes bookable (default: now)"
    )


class PublishSessions(Strict):
    rows: list[dict[str, object]] = Field(
        max_length=5000, description="SessionRow objects; each is validated on its own"
    )


class BookVaccine(Strict):
    campaign_id: ObjectId
    slot_ids: list[ObjectId] = Field(
        min_length=1,
        max_length=8,
        description="One slot per dose, consecutive doses from the next one due, one site",
    )
    passenger_id: ObjectId | None = Field(
        default=None, description="A consenting person on the account's list (default: self)"
    )
    first_dose: int | None = Field(
        default=None, ge=1, le=8, description="The dose the first slot is for (checked)"
    )


class Reschedule(Strict):
    slot_id: ObjectId


class Consent(Strict):
    statement: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(
        description="How the person consented, e.g. 'Agreed by phone on 2026-11-20'"
    )


class CheckIn(Strict):
    code: Annotated[str, StringConstraints(min_length=4, max_length=16)]


class DoseGiven(Strict):
    lot: Annotated[str, StringConstraints(max_length=64)] = ""


class GrantGroups(Strict):
    id_number: IdNumber
    groups: list[GroupCode] = Field(min_length=1, max_length=10)


class SiteQuery(Strict):
    city: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = Field(
        default=None, description="City name (广州), English name (Guangzhou) or code (4401)"
    )
    district: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    product: ProductCode | None = None
    day: Day | None = Field(default=None, description="With product: places left that day")
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=10_000)


class SiteSlotsQuery(Strict):
    product: ProductCode | None = None
    day: Day | None = Field(default=None, description="Default: the next 14 days")
    days: int = Field(default=14, ge=1, le=62)


class PersonQuery(Strict):
    passenger_id: ObjectId | None = None


class EligibilityQuery(Strict):
    campaign_id: ObjectId
    day: Day
    passenger_id: ObjectId | None = None


class DayQuery(Strict):
    day: Day


# --- vaccine waitlist (issue 5)
class VaccineWaitlistIn(Strict):
    campaign_id: ObjectId
    passenger_id: ObjectId | None = Field(
        default=None, description="A consenting person on the account's list (default: self)"
    )
    site_id: ObjectId | None = Field(default=None, description="One site, or:")
    city_code: Annotated[str, StringConstraints(min_length=2, max_length=12)] | None = Field(
        default=None, description="With district: every site of the district (e.g. 4401)"
    )
    district: Annotated[str, StringConstraints(min_length=1, max_length=60)] | None = None
    first_day: Day
    last_day: Day = Field(description="At most 14 days after first_day (inclusive)")
    deadline: Instant | None = Field(
        default=None, description="Stop waiting at this time (default: the end of last_day)"
    )
