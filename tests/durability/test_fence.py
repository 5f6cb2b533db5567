"""The epoch fence: a Redis change committed to Postgres after a rebuild read Postgres.

The race the chaos run found: a confirm ran in Redis, Redis lost its data, a rebuild read
Postgres and restored the hold as held, and only then did the confirm's commit land.
Postgres said confirmed, the rebuilt Redis said held (or nothing), and the place could be
sold again. Each test injects a rebuild at that moment (after the Redis change, before
the commit) and checks the commit is refused, the answer is 503 ``sales_closed``, Redis
and Postgres agree, and the retry completes the change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from reservation.store import inventory_state
from reservation.store.db import is_fenced_out
from reservation.workers.persister import Persister
from reservation.workflows.epoch_fence import write_epoch
from reservation.workflows.rebuild_inventory import (
    drain_outbox,
    rebuild_inventory,
    reconcile_inventory,
)
from tests.api_fixture import Api
from tests.durability.test_rebuild import act, forget_everything, guarded, hold
from tests.helpers import register
from tests.trains import test_orders_api as orders

__all__ = ["guarded"]  # the fixture, used by name


def after(original: Callable[..., Awaitable[Any]], then: Callable[[], Awaitable[None]]) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        await then()
        return result

    return wrapper


async def lose_redis_and_rebuild(api: Api) -> None:
    await forget_everything(api)
    report = await rebuild_inventory(api.services)
    assert report.oversold_slots == [] and report.oversold_seats == []


async def test_a_fenced_commit_holds_the_bump_back_and_a_later_one_fails(guarded: Api) -> None:
    services = guarded.services
    prefix = services.keys.prefix
    epoch = await write_epoch(services)
    assert epoch != ""
    async with services.pool.acquire() as first, services.pool.acquire() as second:
        tx = first.transaction()
        await tx.start()
        await inventory_state.fence(first, prefix, epoch)
        bump = asyncio.ensure_future(inventory_state.begin_rebuild(second, prefix))
        await asyncio.sleep(0.3)
        assert not bump.done()  # waits for the fenced transaction
        await tx.commit()
        assert await asyncio.wait_for(bump, 5) == int(epoch) + 1
        async with first.transaction():
            with pytest.raises(asyncpg.PostgresError) as refused:
                await inventory_state.fence(first, prefix, epoch)
        assert is_fenced_out(refused.value)
        async with first.transaction():
            await inventory_state.fence(first, prefix, str(int(epoch) + 1))
            await inventory_state.fence(first, prefix, "")  # unguarded: no fence


async def test_a_slot_confirm_across_a_rebuild_is_refused_then_completes(
    guarded: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = guarded
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    me = await register(api.client)
    status, held = await hold(api, me, slot["id"])
    assert status == 201
    await drain_outbox(api.services)  # the held booking is in Postgres
    slots = api.services.slots
    monkeypatch.setattr(slots, "confirm", after(slots.confirm, lambda: lose_redis_and_rebuild(api)))
    assert await act(api, me, held["id"], "confirm") == (503, "sales_closed")
    monkeypatch.undo()
    # Nothing committed behind the rebuild's back: Redis (restored: held) and Postgres agree.
    assert await reconcile_inventory(api.services) == []
    assert await act(api, me, held["id"], "confirm") == (200, "")
    async with api.services.pool.acquire() as conn:
        state = await conn.fetchval("SELECT state FROM bookings WHERE id = $1", held["id"])
    assert state == "confirmed"
    assert await reconcile_inventory(api.services) == []


async def test_a_train_payment_across_a_rebuild_is_refused_then_completes(
    guarded: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = guarded
    day = await orders.setup(api)
    run = f"G1-{day:%Y%m%d}"
    me = await orders.citizen(api)
    order = await orders.call(api, "POST", "/v1/orders", me, orders.order_body(run, me["pax"]), 201)
    seats = api.services.seats
    monkeypatch.setattr(seats, "confirm", after(seats.confirm, lambda: lose_redis_and_rebuild(api)))
    body = await orders.call(api, "POST", f"/v1/orders/{order['id']}/pay", me, status=503, key="k")
    assert body["code"] == "sales_closed"
    monkeypatch.undo()
    assert await reconcile_inventory(api.services) == []
    paid = await orders.call(api, "POST", f"/v1/orders/{order['id']}/pay", me, key="k")
    assert [t["state"] for t in paid["tickets"]] == ["confirmed"]
    assert await reconcile_inventory(api.services) == []


async def test_a_persister_batch_read_before_a_rebuild_is_not_written_after_it(
    guarded: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = guarded
    services = api.services
    [slot] = await api.publish("hosp-a", [api.slot(capacity=2)])
    status, held = await hold(api, await register(api.client), slot["id"])
    assert status == 201
    persister = Persister(
        services, consumer="fence-test", shards=list(range(services.keys.shard_count))
    )

    async def bump() -> None:
        async with services.pool.acquire() as conn:
            await inventory_state.begin_rebuild(conn, services.keys.prefix)

    monkeypatch.setattr(persister, "_read", after(persister._read, bump))
    with pytest.raises(asyncpg.PostgresError) as refused:
        await persister.run_once()
    assert is_fenced_out(refused.value)
    async with services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM bookings WHERE id = $1", held["id"]) == 0
    # Not acknowledged: the rebuild's own drain (unfenced) writes it.
    monkeypatch.undo()
    await rebuild_inventory(services)
    async with services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM bookings WHERE id = $1", held["id"]) == "held"
    assert await reconcile_inventory(services) == []


async def test_a_process_with_a_stale_epoch_confirms_without_a_503(guarded: Api) -> None:
    """After a rebuild elsewhere this process still caches the old epoch: its script is
    refused, reloads and runs, and the commit, fenced with the old epoch, is refused. The
    request then runs once more with the fresh epoch (a replay in Redis) and succeeds,
    instead of answering sales_closed while sales are open."""
    api = guarded
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    me = await register(api.client)
    status, held = await hold(api, me, slot["id"])
    assert status == 201
    guard = api.services.slots.guard
    assert guard is not None
    before = guard.state
    await rebuild_inventory(api.services)  # "elsewhere": then forget we saw it
    guard.set(before)
    assert await act(api, me, held["id"], "confirm") == (200, "")
    assert guard.state.epoch == before.epoch + 1
    assert await reconcile_inventory(api.services) == []
