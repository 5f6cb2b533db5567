"""Rebuilding the live inventory from Postgres, and reconciling the two (issue 4).

The app runs guarded (the epoch checked in every writing script). A test books over the
HTTP API, lets the persister write, then deletes its Redis keys, as a Redis that lost its
data would come back, and checks that sales stay closed until the rebuild, and that the
rebuild brings back exactly what Postgres knows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from inventory.epoch import LOST
from inventory.errors import SalesClosed
from inventory.slot_engine import shard_from_id
from reservation.cli import main
from reservation.services import Services
from reservation.settings import Settings
from reservation.workflows import rebuild_inventory as rebuild_module
from reservation.workflows.rebuild_inventory import (
    Difference,
    RebuildReport,
    Snapshot,
    drain_outbox,
    ensure_inventory_ready,
    rebuild_inventory,
    reconcile_inventory,
    sales_open,
)
from tests.api_fixture import Api
from tests.helpers import register


@pytest.fixture
async def guarded(api: Api) -> AsyncIterator[Api]:
    """The api fixture runs guarded and built (epoch 1), as `fairseat serve` does."""
    assert api.services.slots.guard is not None
    assert await sales_open(api.services)
    assert await ensure_inventory_ready(api.services) is None  # already open
    yield api


async def hold(
    api: Api, citizen: dict[str, Any], slot_id: str, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = dict(citizen["headers"])
    if key is not None:
        headers["Idempotency-Key"] = key
    resp = await api.client.post("/v1/bookings", json={"slot_id": slot_id}, headers=headers)
    body: dict[str, Any] = await resp.json()
    if resp.status == 503:
        assert resp.headers["Retry-After"]
    return resp.status, body


async def act(api: Api, citizen: dict[str, Any], hold_id: str, what: str) -> tuple[int, str]:
    resp = await api.client.post(f"/v1/bookings/{hold_id}/{what}", headers=citizen["headers"])
    return resp.status, str((await resp.json()).get("code", ""))


async def forget_everything(api: Api) -> None:
    """What a Redis that lost its data looks like to us: none of our keys."""
    redis = api.services.redis
    keys = [k async for k in redis.scan_iter(match=f"{api.services.keys.prefix}:*")]
    if keys:
        await redis.unlink(*keys)


@pytest.fixture
async def booked(guarded: Api) -> dict[str, Any]:
    """Two slots of one doctor on one day; holds in every state, all persisted."""
    api = guarded
    slot_a, slot_b = (
        s["id"]
        for s in await api.publish(
            "hosp-a", [api.slot(capacity=3), api.slot(capacity=2, hours_ahead=25)]
        )
    )
    people = {name: await register(api.client) for name in ("held", "paid", "gone", "late", "key")}
    status, late = await hold(api, people["late"], slot_b)
    assert status == 201
    api.clock.advance(300)  # "late" will pass its deadline while Redis is away
    ids = {"late": late["id"]}
    for name, slot in (("held", slot_a), ("paid", slot_a), ("gone", slot_a)):
        status, body = await hold(api, people[name], slot)
        assert status == 201, body
        ids[name] = body["id"]
    status, body = await hold(api, people["key"], slot_b, key="retry-me")
    assert status == 201
    ids["key"] = body["id"]
    assert (await act(api, people["paid"], ids["paid"], "confirm"))[0] == 200
    assert (await act(api, people["gone"], ids["gone"], "cancel"))[0] == 200
    await drain_outbox(api.services)
    return {"a": slot_a, "b": slot_b, "people": people, "ids": ids}


async def available(api: Api, slot_id: str) -> int | None:
    return (await api.services.slots.available([slot_id]))[slot_id]


async def test_lost_redis_closes_sales_until_rebuilt(guarded: Api, booked: dict[str, Any]) -> None:
    api, ids, people = guarded, booked["ids"], booked["people"]
    newcomer = await register(api.client)
    await forget_everything(api)
    api.clock.advance(400)  # "late" is past its deadline now; the others are not

    status, body = await hold(api, newcomer, booked["a"])
    assert (status, body["code"]) == (503, "sales_closed")
    assert await act(api, people["held"], ids["held"], "confirm") == (503, "sales_closed")
    assert not await sales_open(api.services)
    # Reads go on (from Postgres).
    resp = await api.client.get("/v1/bookings", headers=people["paid"]["headers"])
    assert resp.status == 200

    report = await rebuild_inventory(api.services)
    assert (report.slots, report.live_holds, report.confirmed) == (2, 2, 1)
    assert report.expired_overdue == 1 and report.ended == 2  # "late" + "gone"
    assert report.oversold_slots == []
    assert await sales_open(api.services)
    assert await reconcile_inventory(api.services) == []

    # Stock accounts for the confirmed booking and the live holds; "late" is not live.
    assert await available(api, booked["a"]) == 3 - 2
    assert await available(api, booked["b"]) == 2 - 1
    late = await api.services.slots.read_hold(ids["late"])
    assert late is not None and late.state == "expired"
    # A restored hold can be paid; a retry of a restored hold replays.
    assert (await act(api, people["held"], ids["held"], "confirm"))[0] == 200
    status, body = await hold(api, people["key"], booked["b"], key="retry-me")
    assert (status, body["id"], body["replay"]) == (200, ids["key"], True)
    # One booking per doctor per day still holds for the paid citizen...
    status, body = await hold(api, people["paid"], booked["b"])
    assert (status, body["code"]) == (409, "person_limit")
    # ...and the account cap still counts the restored live hold.
    cap_key = api.services.keys.account_holds(people["key"]["account_id"])
    assert await api.services.redis.zscore(cap_key, ids["key"]) is not None
    # The last place of each slot sells once, then it is sold out.
    assert (await hold(api, newcomer, booked["b"]))[0] == 201
    status, body = await hold(api, await register(api.client), booked["a"])
    assert status == 201
    status, body = await hold(api, await register(api.client), booked["a"])
    assert (status, body["code"]) == (409, "sold_out")
    assert await reconcile_inventory(api.services) == []


async def test_reconcile_reports_every_kind_of_difference(
    guarded: Api, booked: dict[str, Any]
) -> None:
    api, ids = guarded, booked["ids"]
    assert await reconcile_inventory(api.services) == []
    redis, keys = api.services.redis, api.services.keys
    shard = shard_from_id(booked["a"])
    await redis.hincrby(keys.slot(shard, booked["a"]), "available", -1)  # stock off by one
    await redis.unlink(keys.hold(shard, ids["held"]))  # a hold lost
    extra = f"h{shard}-{'e' * 24}"
    await redis.hset(
        keys.hold(shard, extra), mapping={"slot": booked["a"], "state": "held", "account": "x"}
    )  # a hold Postgres never heard of
    await redis.hset(keys.hold(shard, ids["paid"]), "state", "cancelled")  # wrong state
    await redis.set(keys.epoch(3), "7")  # a stale marker

    diffs = await reconcile_inventory(api.services)
    kinds = {d.kind for d in diffs}
    assert {"stock", "missing_hold", "extra_hold", "hold_state", "marker"} <= kinds
    subjects = {(d.kind, d.subject) for d in diffs}
    assert ("stock", booked["a"]) in subjects
    assert ("missing_hold", ids["held"]) in subjects
    assert ("extra_hold", extra) in subjects
    assert ("hold_state", ids["paid"]) in subjects
    assert all(d.describe() for d in diffs)

    report = await rebuild_inventory(api.services)
    assert report.removed_holds == 1
    assert await reconcile_inventory(api.services) == []


async def test_operator_routes(guarded: Api, booked: dict[str, Any]) -> None:
    api = guarded
    resp = await api.client.get("/v1/operator/inventory/status", headers=api.operator)
    status = await resp.json()
    assert resp.status == 200 and status["sales_open"] and status["epoch"] == 1
    citizen = booked["people"]["held"]
    resp = await api.client.get("/v1/operator/inventory/status", headers=citizen["headers"])
    assert resp.status == 403

    await api.services.redis.delete(api.services.keys.epoch(5))
    resp = await api.client.get("/v1/operator/inventory/reconcile", headers=api.operator)
    body = await resp.json()
    assert not body["clean"]
    assert [d["kind"] for d in body["differences"]] == ["marker"]
    assert "(missing)" in body["differences"][0]["description"]

    resp = await api.client.post("/v1/operator/inventory/rebuild", headers=api.operator)
    assert resp.status == 200 and (await resp.json())["epoch"] == 2
    resp = await api.client.get("/v1/operator/inventory/reconcile", headers=api.operator)
    assert (await resp.json()) == {"clean": True, "differences": []}

    await api.services.redis.xadd(api.services.keys.dead_letters(9), {"_reason": "bad"})
    resp = await api.client.get("/v1/operator/dead-letters?limit=5", headers=api.operator)
    [entry] = (await resp.json())["dead_letters"]
    assert (entry["shard"], entry["fields"]["_reason"]) == (9, "bad")


def test_cli_commands(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.database_url and settings.redis_url
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "FAIRSEAT_REDIS_CLUSTER": "1" if settings.redis_cluster else "0",
        "FAIRSEAT_KEY_PREFIX": settings.key_prefix,
        "FAIRSEAT_SHARD_COUNT": "8",
        "FAIRSEAT_SECRET_KEY": "s",
        "FAIRSEAT_ID_HMAC_KEY": "h",
        "FAIRSEAT_OPERATOR_KEY": "o",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["inventory", "status"]) == 1  # never built
    assert main(["inventory", "reconcile"]) == 1
    assert "sales_closed inventory" in capsys.readouterr().out
    assert main(["inventory", "rebuild"]) == 0
    assert "sales are open under epoch 1" in capsys.readouterr().out
    assert main(["inventory", "reconcile"]) == 0
    assert "0 difference(s)" in capsys.readouterr().out
    assert main(["inventory", "status"]) == 0


async def test_nothing_expires_while_sales_are_closed(guarded: Api, booked: dict[str, Any]) -> None:
    api, ids = guarded, booked["ids"]
    shard = shard_from_id(ids["held"])
    await api.services.redis.set(api.services.keys.epoch(shard), "lost")
    api.clock.advance(3600)
    assert await api.services.slots.expire_due(shard, api.clock.now_ms) == 0
    view = await api.services.slots.read_hold(ids["held"])
    assert view is not None and view.state == "held"
    await rebuild_inventory(api.services)  # the overdue holds expire in Postgres instead
    view = await api.services.slots.read_hold(ids["held"])
    assert view is not None and view.state == "expired"
    assert await reconcile_inventory(api.services) == []


class _CloserMidRebuild:
    """A part restored first that, once, does what a process seeing a Redis restart does
    during a rebuild: writes the lost marker into every shard (close_sales)."""

    name = "closer-mid-rebuild"

    def __init__(self) -> None:
        self.fired = 0

    async def read(self, services: Services, now_ms: int) -> Snapshot:
        return Snapshot(now_ms, [], [])

    async def restore(
        self, services: Services, snapshot: Snapshot, marker: str, report: RebuildReport
    ) -> None:
        if not self.fired:
            self.fired += 1
            await overwrite_markers(services)

    def live_account_holds(self, snapshot: Snapshot) -> dict[str, dict[str, int]]:
        return {}

    async def compare(self, services: Services, snapshot: Snapshot) -> list[Difference]:
        return []


async def test_a_rebuild_whose_markers_are_overwritten_starts_again(
    guarded: Api, booked: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = guarded
    await forget_everything(api)
    closer = _CloserMidRebuild()
    monkeypatch.setattr(rebuild_module, "PARTS", [closer, *rebuild_module.all_parts()])

    report = await rebuild_inventory(api.services)

    assert closer.fired == 1
    assert report.attempts == 2
    assert (report.slots, report.live_holds, report.confirmed) == (2, 3, 1)
    assert await sales_open(api.services)
    assert await reconcile_inventory(api.services) == []

    # Every attempt overwritten: the refusal reaches the operator, sales stay closed.
    closer.fired = 0
    monkeypatch.setattr(closer, "restore", _always_overwrite)
    with pytest.raises(SalesClosed):
        await rebuild_inventory(api.services, attempts=2)
    assert not await sales_open(api.services)


async def _always_overwrite(
    services: Services, snapshot: Snapshot, marker: str, report: RebuildReport
) -> None:
    await overwrite_markers(services)


async def overwrite_markers(services: Services) -> None:
    async with services.redis.pipeline(transaction=False) as pipe:
        for shard in range(services.keys.shard_count):
            pipe.set(services.keys.epoch(shard), LOST)
        await pipe.execute()
