"""Providers, their resources and published slots."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from reservation.domain.slots import ExistingSlot


async def upsert_provider(conn: Any, provider_id: str, name: str, kind: str) -> None:
    await conn.execute(
        """INSERT INTO providers (id, name, kind) VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name""",
        provider_id,
        name,
        kind,
    )


async def get_provider(conn: Any, provider_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM providers WHERE id = $1", provider_id)
    return dict(row) if row is not None else None


async def list_providers(conn: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch("SELECT * FROM providers ORDER BY id")]


async def upsert_resources(
    conn: Any, provider_id: str, resources: Sequence[tuple[str, str, str, str, dict[str, Any]]]
) -> dict[str, str]:
    """Insert or rename resources (id, code, name, kind, details); returns code -> id."""
    for rid, code, name, kind, details in resources:
        await conn.execute(
            """INSERT INTO resources (id, provider_id, code, name, kind, details)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (provider_id, code) DO UPDATE
               SET name = EXCLUDED.name, kind = EXCLUDED.kind, details = EXCLUDED.details""",
            rid,
            provider_id,
            code,
            name,
            kind,
            details,
        )
    return await resource_ids(conn, provider_id)


async def resource_ids(conn: Any, provider_id: str) -> dict[str, str]:
    rows = await conn.fetch("SELECT code, id FROM resources WHERE provider_id = $1", provider_id)
    return {r["code"]: r["id"] for r in rows}


async def existing_slots(
    conn: Any, provider_id: str, codes: Sequence[str], start: dt.datetime, end: dt.datetime
) -> list[ExistingSlot]:
    rows = await conn.fetch(
        """SELECT s.id, r.code, s.starts_at, s.ends_at, s.capacity, s.release_at
           FROM slots s JOIN resources r ON r.id = s.resource_id
           WHERE s.provider_id = $1 AND r.code = ANY($2::text[])
             AND s.starts_at < $4 AND s.ends_at > $3 AND s.status <> 'cancelled'""",
        provider_id,
        list(codes),
        start,
        end,
    )
    return [
        ExistingSlot(
            r["id"], r["code"], r["starts_at"], r["ends_at"], r["capacity"], r["release_at"]
        )
        for r in rows
    ]


async def insert_slots(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (id, provider_id, resource_id, day, starts_at, ends_at, capacity, release_at)."""
    await conn.executemany(
        """INSERT INTO slots (id, provider_id, resource_id, day, starts_at, ends_at, capacity,
                              release_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING""",
        rows,
    )


async def list_slots(
    conn: Any,
    *,
    provider_id: str | None = None,
    resource_id: str | None = None,
    day: dt.date | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT s.*, r.code AS resource_code, r.name AS resource_name, r.kind AS resource_kind,
                  p.name AS provider_name
           FROM slots s JOIN resources r ON r.id = s.resource_id
           JOIN providers p ON p.id = s.provider_id
           WHERE ($1::text IS NULL OR s.provider_id = $1)
             AND ($2::text IS NULL OR s.resource_id = $2)
             AND ($3::date IS NULL OR s.day = $3)
             AND s.status = 'open'
           ORDER BY s.starts_at, r.code LIMIT $4""",
        provider_id,
        resource_id,
        day,
        limit,
    )
    return [dict(r) for r in rows]


async def get_slot(conn: Any, slot_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM slots WHERE id = $1", slot_id)
    return dict(row) if row is not None else None
