"""Amnesia: Redis restarts mid-rush from an older copy of its AOF (issue 4).

A real Valkey with ``appendonly yes`` of this test's own: bookings are made, a copy of its
AOF is put aside, more bookings follow (the confirmed ones committed in Postgres), then
Redis is stopped, the older copy put back, and Redis started again. Sales must stay closed
(503 ``sales_closed``) until a rebuild, after which reconciliation is clean, no confirmed
booking is lost and nothing is sold beyond capacity.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reservation.api.routing import SERVICES
from reservation.app import create_app
from reservation.auth import new_api_key
from reservation.runtime.embedded import RedisServer
from reservation.settings import Settings
from reservation.store import accounts as account_store
from reservation.store import catalog
from reservation.workflows.rebuild_inventory import (
    drain_outbox,
    ensure_inventory_ready,
    install_epoch_guard,
    rebuild_inventory,
    reconcile_inventory,
)
from tests.api_fixture import Api
from tests.helpers import FakeClock, register

CAPACITY = 8


@pytest.fixture
def redis(server_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(server_dir / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def app(settings: Settings, redis: RedisServer) -> AsyncIterator[Api]:
    own = settings.replace(redis_url=redis.url, shard_count=16, epoch_refresh_ms=50)
    clock = FakeClock()
    async with TestClient(TestServer(create_app(own, clock=clock))) as client:
        services = client.app[SERVICES]
        install_epoch_guard(services)
        await ensure_inventory_ready(services)
        async with services.pool.acquire() as conn:
            await catalog.upsert_provider(conn, "hosp-a", "Hospital A", "hospital")
            key = new_api_key()
            await account_store.create_api_key(
                conn, api_key=key, role="staff", provider_id="hosp-a"
            )
        yield Api(client, services, clock, {"hosp-a": key}, {})


async def book(api: Api, slot_id: str, *, pay: bool) -> tuple[dict[str, Any], str]:
    citizen = await register(api.client)
    resp = await api.client.post(
        "/v1/bookings", json={"slot_id": slot_id}, headers=citizen["headers"]
    )
    assert resp.status == 201, await resp.text()
    hold_id = str((await resp.json())["id"])
    if pay:
        resp = await api.client.post(f"/v1/bookings/{hold_id}/confirm", headers=citizen["headers"])
        assert resp.status == 200, await resp.text()
    return citizen, hold_id


async def pg_states(api: Api) -> dict[str, str]:
    async with api.services.pool.acquire() as conn:
        return {r["id"]: r["state"] for r in await conn.fetch("SELECT id, state FROM bookings")}


async def test_restore_of_an_older_copy_closes_sales_until_rebuilt(
    app: Api, redis: RedisServer, server_dir: Path
) -> None:
    api = app
    [slot] = await api.publish("hosp-a", [api.slot(capacity=CAPACITY)])
    slot_id = slot["id"]
    early = [await book(api, slot_id, pay=True) for _ in range(2)]
    await book(api, slot_id, pay=False)
    await drain_outbox(api.services)

    # The copy an operator might restore: taken while the service runs.
    aof = redis.data_dir / "appendonlydir"
    aside = server_dir / "aof-copy"
    shutil.copytree(aof, aside)

    later = [await book(api, slot_id, pay=True) for _ in range(3)]
    await book(api, slot_id, pay=False)
    citizen, cancelled = early[0]
    resp = await api.client.post(f"/v1/bookings/{cancelled}/cancel", headers=citizen["headers"])
    assert resp.status == 200
    await drain_outbox(api.services)
    before = await pg_states(api)

    redis.stop()
    shutil.rmtree(aof)
    shutil.copytree(aside, aof)
    redis.start()
    await asyncio.sleep(0.1)  # past the epoch refresh period

    stranger = await register(api.client)
    for _ in range(5):  # connections broken by the restart answer store_unavailable once
        resp = await api.client.post(
            "/v1/bookings", json={"slot_id": slot_id}, headers=stranger["headers"]
        )
        body = await resp.json()
        if body["code"] != "store_unavailable":
            break
    assert (resp.status, body["code"]) == (503, "sales_closed")
    assert resp.headers["Retry-After"]

    report = await rebuild_inventory(api.services)
    assert report.oversold_slots == []
    assert await reconcile_inventory(api.services) == []
    # No confirmed booking lost; the old copy's replayed events changed nothing.
    after = await pg_states(api)
    assert after == before
    for _, hold_id in later:
        view = await api.services.slots.read_hold(hold_id)
        assert view is not None and view.state == "confirmed"
    cancelled_view = await api.services.slots.read_hold(cancelled)
    assert cancelled_view is not None and cancelled_view.state == "cancelled"

    # No oversell: exactly what is left sells, then sold out.
    taken = sum(1 for state in after.values() if state in ("held", "confirmed"))
    assert (await api.services.slots.available([slot_id]))[slot_id] == CAPACITY - taken
    for _ in range(CAPACITY - taken):
        await book(api, slot_id, pay=True)
    resp = await api.client.post(
        "/v1/bookings", json={"slot_id": slot_id}, headers=stranger["headers"]
    )
    assert (await resp.json())["code"] == "sold_out"
    await drain_outbox(api.services)
    final = await pg_states(api)
    assert sum(1 for s in final.values() if s in ("held", "confirmed")) == CAPACITY
    assert await reconcile_inventory(api.services) == []
