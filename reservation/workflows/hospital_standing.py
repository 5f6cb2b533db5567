"""No-show standing (visible to the citizen), appeals the citizen files, and their
resolution by an operator (audited). An upheld appeal removes the no-show from the count,
which lifts a suspension it caused."""

from __future__ import annotations

from typing import Any

from reservation.domain.clock import iso
from reservation.domain.hospital import standing
from reservation.errors import NotFound
from reservation.fairness import audit
from reservation.services import Services
from reservation.store import hospital as store
from reservation.workflows.hospital_common import NotAllowedNow, now_of
from reservation.workflows.hospital_register import DEFAULT_RULES


async def standing_of(services: Services, *, person: str) -> dict[str, Any]:
    now = now_of(services)
    async with services.pool.acquire() as conn:
        rows = await store.no_shows_of(conn, person)
    state = standing(store.as_no_shows(rows), now, DEFAULT_RULES)
    rules = DEFAULT_RULES
    return {
        "counted_no_shows": state.counted_no_shows,
        "suspended": state.suspended(now),
        "suspended_until": iso(state.suspended_until),
        "rule": {
            "no_show_limit": rules.no_show_limit,
            "window_days": rules.no_show_window.days,
            "suspension_days": rules.suspension.days,
        },
        "no_shows": [
            {
                "registration_id": r["registration_id"],
                "at": iso(r["at"]),
                "appeal_status": r["appeal_status"],
                "appeal_reason": r["appeal_reason"],
                "resolution_note": r["resolution_note"],
            }
            for r in rows
        ],
    }


async def file_appeal(
    services: Services, *, account_id: str, registration_id: str, reason: str
) -> dict[str, Any]:
    """One appeal per no-show; a pending appeal answers as it is (a retry)."""
    now = now_of(services)
    async with services.pool.acquire() as conn, conn.transaction():
        row = await store.lock_no_show(conn, registration_id)
        if row is None or row["account_id"] != account_id:
            raise NotFound("No such no-show.")
        if row["appeal_status"] == "none":
            await store.file_appeal(conn, registration_id, reason, now)
        elif row["appeal_status"] != "pending":
            raise NotAllowedNow("This no-show's appeal was already decided.")
        row = await store.lock_no_show(conn, registration_id)
        assert row is not None
    return {"registration_id": registration_id, "appeal_status": row["appeal_status"]}


async def resolve_appeal(
    services: Services, *, registration_id: str, upheld: bool, note: str, actor: str
) -> dict[str, Any]:
    now = now_of(services)
    async with services.pool.acquire() as conn, conn.transaction():
        row = await store.lock_no_show(conn, registration_id)
        if row is None:
            raise NotFound("No such no-show.")
        if row["appeal_status"] != "pending":
            raise NotAllowedNow(f"The appeal is {row['appeal_status']}, not pending.")
        await store.resolve_appeal(conn, registration_id, upheld, note, now)
        await audit.append(
            conn,
            audit.Kind.STAFF_ACTION,
            f"account:{row['account_id']}",
            actor,
            {"action": "resolve_appeal", "registration": registration_id, "upheld": upheld},
            at=now,
        )
    return {
        "registration_id": registration_id,
        "appeal_status": "upheld" if upheld else "rejected",
    }


async def pending_appeals(services: Services) -> list[dict[str, Any]]:
    async with services.pool.acquire() as conn:
        rows = await store.pending_appeals(conn)
    return [
        {
            "registration_id": r["registration_id"],
            "account_id": r["account_id"],
            "no_show_at": iso(r["at"]),
            "reason": r["appeal_reason"],
            "filed_at": iso(r["appeal_filed_at"]),
        }
        for r in rows
    ]
