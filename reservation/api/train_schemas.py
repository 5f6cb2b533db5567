"""Train routes' query strings and the JSON timetable file (also the OpenAPI schemas).

The timetable file is documented in docs/trains.md; the same models validate a file given
to ``fairseat timetable import`` and a body posted to ``POST /v1/timetables``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from reservation.api.schemas import Day

StationCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


# --- queries -----------------------------------------------------------------------------


class StationQuery(Strict):
    q: Annotated[str, StringConstraints(max_length=40)] = Field(
        default="", description="Prefix of the English or Chinese name, or a station code"
    )
    limit: int = Field(default=20, ge=1, le=100)


class TrainSearchQuery(Strict):
    from_: Annotated[str, StringConstraints(min_length=1, max_length=40)] = Field(
        alias="from", description="Boarding station: code (VNP) or exact name"
    )
    to: Annotated[str, StringConstraints(min_length=1, max_length=40)] = Field(
        description="Alighting station: code (AOH) or exact name"
    )
    date: Day = Field(description="Date of departure from the boarding station (China)")


# --- the timetable file ------------------------------------------------------------------


class StationIn(Strict):
    code: StationCode
    name_zh: Name
    name_en: Name
    city: Name


class LineIn(Strict):
    code: Ref
    name: Name


class CoachIn(Strict):
    coach: Annotated[str, StringConstraints(pattern=r"^\d{2}$")]
    seat_class: Literal["business", "first", "second", "sleeper"] = Field(alias="class")
    layout: Literal["1+2", "2+2", "2+3", "sleeper4", "sleeper6"]
    rows: int = Field(ge=1, le=40, description="Rows (sleepers: compartments)")
    first_row: int = Field(default=1, ge=1, le=40)


class CompositionIn(Strict):
    id: Ref
    description: Annotated[str, StringConstraints(max_length=200)] = ""
    coaches: list[CoachIn] = Field(min_length=1, max_length=30)


class StopIn(Strict):
    station: StationCode
    arrive: ClockTime | None = Field(default=None, description="HH:MM, none at the origin")
    depart: ClockTime | None = Field(default=None, description="HH:MM, none at the terminus")
    km: int = Field(ge=0, le=10_000, description="Distance from the origin")


class CalendarIn(Strict):
    valid_from: Day = Field(alias="from")
    valid_to: Day = Field(alias="to")
    weekdays: Annotated[str, StringConstraints(pattern=r"^[1-7]{1,7}$")] = "1234567"


class TrainIn(Strict):
    number: Annotated[str, StringConstraints(pattern=r"^[GCDZTK][1-9]\d{0,4}$")]
    kind: Literal["G", "C", "D", "Z", "T", "K"] | None = Field(
        default=None, description="Defaults to the number's letter"
    )
    line: Ref | None = None
    composition: Ref
    calendar: CalendarIn
    stops: list[StopIn] = Field(min_length=2, max_length=64)


class TimetableIn(Strict):
    stations: list[StationIn] = Field(default_factory=list, max_length=5000)
    lines: list[LineIn] = Field(default_factory=list, max_length=500)
    compositions: list[CompositionIn] = Field(default_factory=list, max_length=200)
    trains: list[TrainIn] = Field(default_factory=list, max_length=5000)
