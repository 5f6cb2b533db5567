"""Citizen accounts and staff/operator API keys."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import asyncpg

from reservation.errors import Conflict


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def create_account(
    conn: Any,
    *,
    account_id: str,
    name: str,
    phone: str,
    id_hmac: str,
    id_masked: str,
    birth_date: dt.date,
) -> None:
    try:
        await conn.execute(
            """INSERT INTO accounts (id, name, phone, id_hmac, id_masked, birth_date)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            account_id,
            name,
            phone,
            id_hmac,
            id_masked,
            birth_date,
        )
    except asyncpg.UniqueViolationError as exc:
        field = "phone" if "phone" in (exc.constraint_name or "") else "id_number"
        raise Conflict(
            "An account with this ID number or phone already exists.", field=field
        ) from exc


async def find_account_by_login(conn: Any, phone: str, id_hmac: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM accounts WHERE phone = $1 AND id_hmac = $2", phone, id_hmac
    )
    return dict(row) if row is not None else None


async def get_account(conn: Any, account_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM accounts WHERE id = $1", account_id)
    return dict(row) if row is not None else None


async def create_api_key(
    conn: Any, *, api_key: str, role: str, provider_id: str | None, label: str = ""
) -> None:
    await conn.execute(
        "INSERT INTO api_keys (key_hash, role, provider_id, label) VALUES ($1, $2, $3, $4)",
        key_hash(api_key),
        role,
        provider_id,
        label,
    )


async def find_api_key(conn: Any, api_key: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT role, provider_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        key_hash(api_key),
    )
    return dict(row) if row is not None else None
