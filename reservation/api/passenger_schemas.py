"""Request bodies of the passenger routes (pydantic; also their OpenAPI schemas)."""

from __future__ import annotations

from pydantic import Field

from reservation.api.schemas import IdNumber, PersonName, Strict
from reservation.domain.passengers import PassengerKind


class AddPassenger(Strict):
    name: PersonName
    id_number: IdNumber = Field(description="18-digit resident ID number (GB 11643)")
    kind: PassengerKind = Field(
        default=PassengerKind.ADULT, description="adult, child (under 14) or student"
    )
