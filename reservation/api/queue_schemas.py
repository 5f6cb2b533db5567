"""Request bodies of the waiting-room routes (pydantic)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from reservation.api.schemas import Day, Instant

SaleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class CreateSale(BaseModel):
    """A queued sale. ``slots``: every open slot of ``provider_id`` released at exactly
    ``release_at`` (stock = their capacity). ``train``: every trip boarding on
    ``train_date``, released at the daily release time; ``stock`` = the seats it sells."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    sale_id: SaleId
    kind: Literal["slots", "train"]
    provider_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    release_at: Instant | None = None
    train_date: Day | None = None
    stock: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    window_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    admit_factor: Annotated[int, Field(ge=1, le=100)] | None = None
    admission_seconds: Annotated[int, Field(ge=5, le=3600)] | None = None
    open_minutes: Annotated[int, Field(ge=1, le=10_080)] | None = None
