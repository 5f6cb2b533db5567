"""Time, injectable. China keeps one time zone and no daylight saving: UTC+8."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

CHINA = dt.timezone(dt.timedelta(hours=8), "CST")

Clock = Callable[[], int]
"""Returns the current time in milliseconds since the epoch."""


def system_clock() -> int:
    return time.time_ns() // 1_000_000


def from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def to_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    return int(moment.timestamp() * 1000)


def local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(CHINA).date()


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in China Standard Time (+08:00), the time citizens and providers live in."""
    return value.astimezone(CHINA).isoformat() if value is not None else None


def iso_from_ms(ms: int) -> str:
    """``iso(from_ms(ms))`` in one conversion (a hold's deadline, on every hold's answer)."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=CHINA).isoformat()
