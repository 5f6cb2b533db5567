"""Request bodies of the passenger routes (pydantic; also their OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from reservation.api.schemas import IdNumber, Strict
from reservation.domain.passengers import PassengerKind


class AddPassenger(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    id_number: IdNumber = Field(description="18-digit resident ID number (GB 11643)")
    kind: PassengerKind = Field(
        default=PassengerKind.ADULT, description="adult, child (under 14) or student"
    )
