"""The account's passenger list in Postgres.

Additions run in one transaction holding the account row's lock (``FOR UPDATE``), so two
concurrent additions cannot both see 14 entries and end with 16.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from reservation.domain.passengers import NewPassenger, PassengerKind, holder_kind

COLUMNS = "id, account_id, name, id_masked, birth_date, kind, is_holder, created_at"


def new_passenger_id() -> str:
    return "pa-" + secrets.token_hex(8)


async def ensure_holder(conn: Any, account_id: str, today: dt.date) -> None:
    """Put the account holder on their own list (once; a no-op afterwards). Lazily: an
    account registered before passengers existed gets its entry on first use."""
    row = await conn.fetchrow(
        "SELECT name, id_hmac, id_masked, birth_date FROM accounts WHERE id = $1", account_id
    )
    if row is None:
        return
    await conn.execute(
        """INSERT INTO passengers (id, account_id, name, id_hmac, id_masked, birth_date,
                                   kind, is_holder)
           VALUES ($1, $2, $3, $4, $5, $6, $7, true)
           ON CONFLICT DO NOTHING""",
        new_passenger_id(),
        account_id,
        row["name"],
        row["id_hmac"],
        row["id_masked"],
        row["birth_date"],
        holder_kind(row["birth_date"], today).value,
    )


async def list_passengers(conn: Any, account_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM passengers WHERE account_id = $1
            ORDER BY is_holder DESC, created_at, id""",
        account_id,
    )
    return [dict(r) for r in rows]


async def add_passenger(
    conn: Any,
    account_id: str,
    today: dt.date,
    check: Callable[[set[str]], NewPassenger],
) -> dict[str, Any]:
    """Lock the account, apply ``check`` (the domain rules) to the ID HMACs already listed,
    then insert. ``check`` raises to refuse."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
        await ensure_holder(conn, account_id, today)
        existing = {
            r["id_hmac"]
            for r in await conn.fetch(
                "SELECT id_hmac FROM passengers WHERE account_id = $1", account_id
            )
        }
        new = check(existing)
        row = await conn.fetchrow(
            f"""INSERT INTO passengers (id, account_id, name, id_hmac, id_masked, birth_date,
                                        kind)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}""",
            new_passenger_id(),
            account_id,
            new.name,
            new.resident_id.hmac_hex,
            new.resident_id.masked,
            new.resident_id.birth_date,
            PassengerKind(new.kind).value,
        )
    return dict(row)


async def get_passenger(conn: Any, account_id: str, passenger_id: str) -> dict[str, Any] | None:
    """The passenger if it is on this account's list (another account's is "not found")."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS}, id_hmac FROM passengers WHERE id = $1 AND account_id = $2",
        passenger_id,
        account_id,
    )
    return dict(row) if row is not None else None


async def delete_passenger(conn: Any, account_id: str, passenger_id: str) -> bool:
    """Remove a non-holder entry of this account's list; False if there is none."""
    status: str = await conn.execute(
        "DELETE FROM passengers WHERE id = $1 AND account_id = $2 AND NOT is_holder",
        passenger_id,
        account_id,
    )
    return status.endswith(" 1")


async def person_hmacs(conn: Any, account_id: str, passenger_ids: list[str]) -> dict[str, str]:
    """passenger id -> ID HMAC for those of ``passenger_ids`` on this account's list (what a
    hold passes to the seat inventory as its passengers)."""
    rows = await conn.fetch(
        "SELECT id, id_hmac FROM passengers WHERE account_id = $1 AND id = ANY($2::text[])",
        account_id,
        passenger_ids,
    )
    return {r["id"]: r["id_hmac"] for r in rows}
