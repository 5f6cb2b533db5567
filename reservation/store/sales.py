"""Postgres side of queued sales (migration 0010): definitions, covered slots, the
published joiners list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from reservation.domain.clock import to_ms
from reservation.fairness.waiting_room_rules import Sale

_SALE_COLUMNS = (
    "s.id, s.kind, s.provider_id, s.train_date, s.release_at, s.window_ends_at, s.ends_at,"
    " s.admit_factor, s.admission_ttl_ms, s.stock, s.commitment, s.seed, s.window_count,"
    " s.sold_out_notified_at,"
    " COALESCE((SELECT array_agg(slot_id ORDER BY slot_id) FROM sale_slots"
    "  WHERE sale_id = s.id), '{}') AS slot_ids"
)


def sale_from_row(row: Any) -> Sale:
    return Sale(
        sale_id=row["id"],
        kind=row["kind"],
        provider_id=row["provider_id"],
        train_date=row["train_date"].isoformat() if row["train_date"] else None,
        release_ms=to_ms(row["release_at"]),
        window_ends_ms=to_ms(row["window_ends_at"]),
        ends_ms=to_ms(row["ends_at"]),
        admit_factor=row["admit_factor"],
        admission_ttl_ms=row["admission_ttl_ms"],
        stock=row["stock"],
        commitment=row["commitment"],
        seed_hex=row["seed"],
        window_count=row["window_count"],
        sold_out_notified=row["sold_out_notified_at"] is not None,
        slot_ids=tuple(row["slot_ids"]),
    )


async def get_sale(conn: Any, sale_id: str) -> Sale | None:
    row = await conn.fetchrow(f"SELECT {_SALE_COLUMNS} FROM sales s WHERE s.id = $1", sale_id)
    return None if row is None else sale_from_row(row)


async def sales_ending_after(conn: Any, moment: dt.datetime) -> list[Sale]:
    rows = await conn.fetch(
        f"SELECT {_SALE_COLUMNS} FROM sales s WHERE s.ends_at > $1 ORDER BY s.release_at", moment
    )
    return [sale_from_row(r) for r in rows]


async def salt_of(conn: Any, sale_id: str) -> bytes:
    salt: bytes = await conn.fetchval("SELECT seed_salt FROM sales WHERE id = $1", sale_id)
    return salt


async def released_slots(
    conn: Any, provider_id: str, release_at: dt.datetime
) -> list[tuple[str, int]]:
    """(slot id, capacity) of a provider's open slots released at exactly that moment."""
    rows = await conn.fetch(
        "SELECT id, capacity FROM slots WHERE provider_id = $1 AND release_at = $2"
        " AND status = 'open' ORDER BY id",
        provider_id,
        release_at,
    )
    return [(r["id"], r["capacity"]) for r in rows]


async def insert_sale(conn: Any, sale: Sale, *, salt: bytes, created_by: str) -> bool:
    """False if a sale with this id exists already."""
    created = await conn.fetchval(
        "INSERT INTO sales (id, kind, provider_id, train_date, release_at, window_ends_at,"
        " ends_at, admit_factor, admission_ttl_ms, stock, seed_salt, commitment, created_by)"
        " VALUES ($1, $2, $3, $4::text::date, to_timestamp($5 / 1000.0),"
        " to_timestamp($6 / 1000.0), to_timestamp($7 / 1000.0), $8, $9, $10, $11, $12, $13)"
        " ON CONFLICT (id) DO NOTHING RETURNING true",
        sale.sale_id,
        sale.kind,
        sale.provider_id,
        sale.train_date,
        sale.release_ms,
        sale.window_ends_ms,
        sale.ends_ms,
        sale.admit_factor,
        sale.admission_ttl_ms,
        sale.stock,
        salt,
        sale.commitment,
        created_by,
    )
    if not created:
        return False
    if sale.slot_ids:
        await conn.executemany(
            "INSERT INTO sale_slots (sale_id, slot_id) VALUES ($1, $2)",
            [(sale.sale_id, s) for s in sale.slot_ids],
        )
    return True


async def lock_sale(conn: Any, sale_id: str) -> Any:
    return await conn.fetchrow(
        "SELECT seed, sold_out_notified_at FROM sales WHERE id = $1 FOR UPDATE", sale_id
    )


async def record_draw(
    conn: Any, sale_id: str, *, seed_hex: str, joiners: Sequence[tuple[str, int, int, int]]
) -> None:
    """The revealed seed and the window's joiners (join id, arrival, joined_ms, position)."""
    await conn.executemany(
        "INSERT INTO sale_joiners (sale_id, join_id, arrival, joined_ms, position)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [(sale_id, *j) for j in joiners],
    )
    await conn.execute(
        "UPDATE sales SET seed = $2, window_count = $3, drawn_at = now() WHERE id = $1",
        sale_id,
        seed_hex,
        len(joiners),
    )


async def joiners(conn: Any, sale_id: str) -> list[dict[str, int | str]]:
    rows = await conn.fetch(
        "SELECT join_id, arrival, joined_ms FROM sale_joiners WHERE sale_id = $1 ORDER BY position",
        sale_id,
    )
    return [
        {"join_id": r["join_id"], "arrival": r["arrival"], "joined_ms": r["joined_ms"]}
        for r in rows
    ]


async def positions(conn: Any, sale_id: str) -> list[str]:
    """Join ids in draw order (what Redis needs back after it lost the queue)."""
    rows = await conn.fetch(
        "SELECT join_id FROM sale_joiners WHERE sale_id = $1 ORDER BY position", sale_id
    )
    return [r["join_id"] for r in rows]


async def mark_sold_out_notified(conn: Any, sale_id: str) -> None:
    await conn.execute("UPDATE sales SET sold_out_notified_at = now() WHERE id = $1", sale_id)
