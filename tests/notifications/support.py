"""Shared helpers of the notification tests: bookings through the API, the persister run
by hand, and a look at what was recorded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from reservation.notifications.record import NotificationKind, record_notification
from reservation.notifications.senders import SendResult
from reservation.notifications.store import Stored
from reservation.workers.persister import Persister
from tests.api_fixture import Api
from tests.helpers import register


def persister(api: Api, consumer: str = "p1") -> Persister:
    return Persister(
        services=api.services,
        consumer=consumer,
        shards=list(range(api.services.settings.shard_count)),
    )


async def new_slot(api: Api, *, hours_ahead: float = 24, capacity: int = 5) -> str:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=capacity, hours_ahead=hours_ahead)])
    return str(slot["id"])


async def citizen(api: Api) -> dict[str, Any]:
    return await register(api.client)


async def hold(api: Api, who: dict[str, Any], slot_id: str) -> str:
    resp = await api.client.post("/v1/bookings", json={"slot_id": slot_id}, headers=who["headers"])
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def act(api: Api, who: dict[str, Any], hold_id: str, what: str) -> None:
    resp = await api.client.post(f"/v1/bookings/{hold_id}/{what}", headers=who["headers"])
    assert resp.status == 200, await resp.text()


async def notes(api: Api, account_id: str | None = None) -> list[tuple[str, str, str]]:
    """(kind, subject, dedupe key) of every notification (of one account), oldest first."""
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, subject, dedupe_key FROM notifications"
            " WHERE $1::text IS NULL OR account_id = $1 ORDER BY id",
            account_id,
        )
    return [(r["kind"], r["subject"], r["dedupe_key"]) for r in rows]


async def reminders(api: Api) -> list[dict[str, Any]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM reminders ORDER BY id")
    return [dict(r) for r in rows]


async def record_plain(api: Api, account_id: str, n: int, *, tag: str = "n") -> list[int]:
    """n notifications recorded through the public contract, oldest first; their ids."""
    async with api.services.pool.acquire() as conn, conn.transaction():
        for i in range(n):
            assert await record_notification(
                conn,
                account_id=account_id,
                kind=NotificationKind.CONFIRMED,
                subject=f"test:{tag}{i}",
                payload={"i": i, "名": "张三"},
                dedupe_key=f"test:{account_id}:{tag}{i}",
                at=api.clock.now,
            )
        rows = await conn.fetch(
            "SELECT id FROM notifications WHERE account_id = $1 AND subject LIKE $2 ORDER BY id",
            account_id,
            f"test:{tag}%",
        )
    return [int(r["id"]) for r in rows]


@dataclass
class RecordingSender:
    """Keeps every notification it was handed, in order (a test double of an SMS gateway;
    a real sender, not a mock of Redis/Postgres). ``fail_first`` sends fail."""

    channel: str = "recording"
    fail_first: int = 0
    sent: list[tuple[int, str]] = field(default_factory=list)  # (notification id, key)
    calls: int = 0
    after_send: Any = None  # called after each successful send (e.g. to stop mid-batch)

    async def send(self, notification: Stored, key: str) -> SendResult:
        self.calls += 1
        if self.calls <= self.fail_first:
            return SendResult(ok=False, detail="failing on purpose")
        self.sent.append((notification.id, key))
        if self.after_send is not None:
            self.after_send(len(self.sent))
        return SendResult(ok=True)

    async def aclose(self) -> None:
        return None


def in_days(api: Api, days: float) -> dt.datetime:
    return api.clock.now + dt.timedelta(days=days)
