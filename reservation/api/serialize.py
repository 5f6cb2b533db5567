"""Turning domain objects and rows into JSON-ready dicts (one place for the wire format)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reservation.domain.clock import CHINA


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in China Standard Time (+08:00), the time citizens and providers live in."""
    return value.astimezone(CHINA).isoformat() if value is not None else None


def booking_from_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "slot_id": row["slot_id"],
        "state": row["state"],
        "held_at": iso(row["held_at"]),
        "deadline": iso(row["deadline"]),
        "confirmed_at": iso(row.get("confirmed_at")),
        "ended_at": iso(row.get("ended_at")),
        "provider_id": row.get("provider_id"),
        "resource_id": row.get("resource_id"),
        "resource_name": row.get("resource_name"),
        "starts_at": iso(row.get("starts_at")),
        "ends_at": iso(row.get("ends_at")),
    }


def slot_from_row(row: dict[str, Any], available: int | None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "provider_id": row["provider_id"],
        "provider_name": row.get("provider_name"),
        "resource_id": row["resource_id"],
        "resource_code": row.get("resource_code"),
        "resource_name": row.get("resource_name"),
        "day": row["day"].isoformat(),
        "starts_at": iso(row["starts_at"]),
        "ends_at": iso(row["ends_at"]),
        "capacity": row["capacity"],
        "release_at": iso(row["release_at"]),
        "available": available,
    }
