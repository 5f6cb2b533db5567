"""Shortcuts shared by the waitlist tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reservation.workers.waitlist_filler import PassReport, WaitlistFiller
from reservation.workflows.rebuild_inventory import drain_outbox
from tests.api_fixture import Api


async def fill(api: Api) -> PassReport:
    """One filler pass over every shard (what the background worker does every 0.5 s)."""
    shards = list(range(api.services.keys.shard_count))
    return await WaitlistFiller(api.services, shards).run_once()


async def persist(api: Api) -> None:
    """The persister's job, done now: outbox events -> Postgres."""
    await drain_outbox(api.services)


def deadline(api: Api, seconds: float = 3600) -> str:
    return (api.clock.now + dt.timedelta(seconds=seconds)).isoformat()


async def post(
    api: Api,
    path: str,
    who: dict[str, Any],
    json: Any = None,
    status: int = 200,
    key: str | None = None,
) -> dict[str, Any]:
    headers: dict[str, str] = dict(who["headers"])
    if key is not None:
        headers["Idempotency-Key"] = key
    resp = await api.client.post(path, json=json, headers=headers)
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def get(api: Api, path: str, who: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await api.client.get(path, headers=dict(who["headers"]))
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def notifications(api: Api, account_id: str) -> list[tuple[str, str]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, subject FROM notifications WHERE account_id = $1 ORDER BY id",
            account_id,
        )
    return [(r["kind"], r["subject"]) for r in rows]


async def audit_kinds(api: Api, subject_prefix: str) -> list[str]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind FROM audit_log WHERE subject LIKE $1 ORDER BY seq", subject_prefix + "%"
        )
    return [r["kind"] for r in rows]
