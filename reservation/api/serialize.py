"""Turning domain objects and rows into JSON-ready dicts (one place for the wire format)."""

from __future__ import annotations

from typing import Any

from reservation.domain.clock import iso

__all__ = ["booking_from_row", "iso", "slot_from_row"]


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
