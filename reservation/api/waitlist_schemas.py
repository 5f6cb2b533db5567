"""Request bodies of the waitlist routes (pydantic; also their OpenAPI schemas). Ranges and
counts that have their own refusal codes are checked by the workflows."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from reservation.api.schemas import Day, Instant, Strict
from reservation.api.ticket_schemas import PassengerId, RunId, SeatClass, StationRef

ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class TrainChoice(Strict):
    run_id: RunId = Field(description="A run from the search, e.g. G1-20261124")
    seat_class: SeatClass


class TrainWaitlistIn(Strict):
    from_: StationRef = Field(alias="from", description="Boarding station: code or name")
    to: StationRef = Field(description="Alighting station: code or name")
    date: Day = Field(description="Date of departure from the boarding station (China)")
    choices: list[TrainChoice] = Field(
        min_length=1, max_length=10, description="Acceptable (run, class) pairs, best first"
    )
    passenger_ids: list[PassengerId] = Field(
        max_length=16, description="1 to 5 ids from GET /v1/passengers, each once"
    )
    deadline: Instant = Field(description="Stop waiting at this time (with offset)")


class SlotWaitlistIn(Strict):
    resource_ids: list[ResourceId] = Field(
        min_length=1, max_length=20, description="Doctors, vaccination sessions or sites"
    )
    first_day: Day
    last_day: Day
    deadline: Instant = Field(description="Stop waiting at this time (with offset)")


class FlagsQuery(Strict):
    limit: int = Field(default=100, ge=1, le=1000)
