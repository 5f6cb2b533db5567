"""Request bodies of the train order and e-ticket routes (pydantic; also their OpenAPI
schemas). Party rules (1 to 5 passengers, each once) are checked by the workflow, so they
answer with their own codes (``party_size``, ``duplicate_passenger``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from reservation.api.schemas import Strict

RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$")]
StationRef = Annotated[str, StringConstraints(min_length=1, max_length=40)]
PassengerId = Annotated[str, StringConstraints(min_length=1, max_length=40)]
SeatClass = Literal["business", "first", "second", "sleeper"]
Wish = Literal["", "window", "aisle", "middle", "upper", "lower"]


class HoldOrder(Strict):
    run_id: RunId = Field(description="A run id from the search, e.g. G1-20261124")
    from_: StationRef = Field(alias="from", description="Boarding station: code or name")
    to: StationRef = Field(description="Alighting station: code or name")
    seat_class: SeatClass
    passenger_ids: list[PassengerId] = Field(
        max_length=16, description="1 to 5 ids from GET /v1/passengers, each once"
    )
    wish: Wish = Field(default="", description="A seat position wish, honoured when possible")


class ChangeTicket(Strict):
    run_id: RunId = Field(description="Another run serving the ticket's two stations")
    seat_class: SeatClass | None = Field(default=None, description="Default: the same class")
    wish: Wish = ""
