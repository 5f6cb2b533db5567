"""Amnesia: Redis restarts mid-rush from an older copy of its AOF (issue 4).

A real Valkey with ``appendonly yes`` of this test's own: bookings (hospital slots, and
train orders in the second test) are made, a copy of its AOF is put aside, more follow (the
confirmed ones committed in Postgres), then Redis is stopped, the older copy put back, and
Redis started again. Sales must stay closed (503 ``sales_closed``) until a rebuild, after
which reconciliation is clean, no confirmed booking or ticket is lost and nothing is sold
beyond capacity (no seat-segment twice).
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
from tests.conftest import on_cluster
from tests.durability import test_seats as trains_test
from tests.helpers import FakeClock, register
from tests.trains import test_orders_api as orders

CAPACITY = 8

# These tests restore one server's AOF copy on a Valkey of their own: the cluster pass
# would run exactly the same thing again.
pytestmark = pytest.mark.skipif(on_cluster(), reason="own single server; single-node pass")


@pytest.fixture
def redis(server_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(server_dir / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def app(settings: Settings, redis: RedisServer) -> AsyncIterator[Api]:
    own = settings.replace(
        redis_url=redis.url, redis_cluster=False, shard_count=16, epoch_refresh_ms=50
    )
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
        operator = {"Authorization": f"Bearer {own.operator_key}"}
        yield Api(client, services, clock, {"hosp-a": key}, operator)


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


async def ticket_states(api: Api) -> dict[str, str]:
    async with api.services.pool.acquire() as conn:
        return {r["id"]: r["state"] for r in await conn.fetch("SELECT id, state FROM tickets")}


async def train_order(
    api: Api, who: dict[str, Any], run: str, key: str
) -> tuple[int, dict[str, Any]]:
    headers = {**who["headers"], "Idempotency-Key": key}
    for _ in range(5):  # a connection broken by the restart answers store_unavailable once
        resp = await api.client.post(
            "/v1/orders", json=orders.order_body(run, who["pax"]), headers=headers
        )
        body: dict[str, Any] = await resp.json()
        if body.get("code") != "store_unavailable":
            break
    return resp.status, body


async def paid_order(api: Api, run: str, key: str) -> tuple[dict[str, Any], str]:
    who = await orders.citizen(api)
    status, body = await train_order(api, who, run, key)
    assert status == 201, body
    resp = await api.client.post(f"/v1/orders/{body['id']}/pay", headers=who["headers"])
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "confirmed"
    return who, str(body["id"])


async def test_older_copy_with_train_orders_closes_seat_sales_until_rebuilt(
    app: Api, redis: RedisServer, server_dir: Path
) -> None:
    api = app
    day = await orders.setup(api)
    run = f"G1-{day:%Y%m%d}"
    seats = api.services.seats
    early = [await paid_order(api, run, f"early-{i}") for i in range(2)]
    unpaid = await orders.citizen(api)
    status, body = await train_order(api, unpaid, run, "unpaid")
    assert status == 201
    unpaid_id = str(body["id"])
    await drain_outbox(api.services)
    aof = redis.data_dir / "appendonlydir"
    aside = server_dir / "aof-copy"
    shutil.copytree(aof, aside)

    # The rush goes on after the copy: paid orders, a cancelled one, an unpaid one.
    later = await asyncio.gather(*(paid_order(api, run, f"later-{i}") for i in range(4)))
    resp = await api.client.post(f"/v1/orders/{unpaid_id}/cancel", headers=unpaid["headers"])
    assert resp.status == 200
    extra = await orders.citizen(api)
    assert (await train_order(api, extra, run, "extra"))[0] == 201
    await drain_outbox(api.services)
    before = await ticket_states(api)
    assert sum(1 for s in before.values() if s in ("held", "confirmed")) == 7

    redis.stop()
    shutil.rmtree(aof)
    shutil.copytree(aside, aof)
    redis.start()
    await asyncio.sleep(0.1)  # past the epoch refresh period

    stranger = await orders.citizen(api)
    status, body = await train_order(api, stranger, run, "closed")
    assert (status, body.get("code")) == (503, "sales_closed"), body
    who, order_id = later[0]
    resp = await api.client.post(f"/v1/orders/{order_id}/cancel", headers=who["headers"])
    assert resp.status in (404, 409, 503)  # the old copy never saw it; nothing changes

    report = await rebuild_inventory(api.services)
    assert report.oversold_seats == [] and report.seat_confirmed == 6
    assert await reconcile_inventory(api.services) == []
    assert await ticket_states(api) == before  # the old copy's replays changed nothing
    for _, order_id in [*early, *later]:
        view = await seats.get_hold(order_id)
        assert view is not None and view.state == "confirmed"
    gone = await seats.get_hold(unpaid_id)
    assert gone is not None and gone.state == "cancelled"
    assert await seats.audit(run, "second") == []

    # Exactly the seats still free for the whole trip sell, then none.
    free = await orders.left(api, run)
    assert free == trains_test.SECOND_SEATS - 7
    buyers = [await orders.citizen(api) for _ in range(free + 2)]
    results = await asyncio.gather(
        *(train_order(api, b, run, f"rush-{i}") for i, b in enumerate(buyers))
    )
    assert sorted(status for status, _ in results) == [201] * free + [409] * 2
    await drain_outbox(api.services)
    assert await reconcile_inventory(api.services) == []
