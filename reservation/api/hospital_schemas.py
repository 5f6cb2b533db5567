"""Request bodies and queries of the hospital routes (issue 6)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from reservation.api.schemas import Day, IdNumber, Instant, ObjectId, PersonName, Phone, Strict


class ScheduleRows(Strict):
    rows: list[dict[str, Any]] = Field(
        max_length=2000,
        description=(
            "One row per doctor session: department_code, department_name, doctor_code,"
            " doctor_name, title, specialty, fee_cny, day (YYYY-MM-DD), session"
            " (morning|afternoon), start, end (HH:MM), slot_minutes, capacity (per window),"
            " counter_capacity (per window, kept for phone/on-site; default: the hospital's"
            " share). Rows are numbered from 0 in errors."
        ),
    )


class PolicyIn(Strict):
    release_time: dt.time = Field(dt.time(7, 0), description="Daily release time (China time)")
    days_ahead: int = Field(7, ge=1, le=60, description="Days bookable ahead")
    cancel_deadline_days_before: int = Field(1, ge=0, le=14)
    cancel_deadline_time: dt.time = dt.time(15, 0)
    counter_share_percent: int = Field(20, ge=0, le=100)
    offer_hold_minutes: int = Field(120, ge=5, le=1440)


class DayQuery(Strict):
    day: Day


class OptionalDayQuery(Strict):
    day: Day | None = None


class BookIn(Strict):
    slot_id: ObjectId


class WalkInIn(Strict):
    slot_id: ObjectId
    name: PersonName
    phone: Phone
    id_number: IdNumber
    channel: Literal["phone", "onsite"] = "onsite"


class CheckInIn(Strict):
    code: Annotated[str, StringConstraints(min_length=4, max_length=20)]


class CancelSessionIn(Strict):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "doctor unavailable"


class StandbyIn(Strict):
    department_id: ObjectId
    day: Day = Field(description="The first day (the only one without last_day)")
    last_day: Day | None = Field(None, description="The last day, at most 7 days in all")
    doctor_id: ObjectId | None = Field(None, description="Only this doctor of the department")
    deadline: Instant | None = Field(
        None, description="Stop waiting at this time (default: the end of the last day)"
    )


class AppealIn(Strict):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class ResolveIn(Strict):
    upheld: bool
    note: Annotated[str, StringConstraints(max_length=1000)] = ""
