"""Applies the versioned SQL migrations in ``store/migrations`` exactly once each.

Each file runs in its own transaction together with its row in ``schema_migrations``; an
advisory lock makes concurrent starters (several workers, several hosts) wait for one
another instead of racing.
"""

from __future__ import annotations

from importlib import resources

import asyncpg

_LOCK_ID = 0x6661697273656174  # "fairseat"


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("reservation").joinpath("store", "migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name[:-4], folder.joinpath(name).read_text("utf-8")) for name in names]


async def apply_migrations(dsn: str) -> list[str]:
    """Apply every migration not yet applied; return the versions applied now."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied: list[str] = []
            for version, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", version
                    )
                applied.append(version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()
