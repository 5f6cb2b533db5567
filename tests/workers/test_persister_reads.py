"""How the persister reads its streams (issue 7, speed): many shards per pass, the
background loop waiting in Redis when idle, and idle shards backing off on a cluster.
Real Redis (single node, or the cluster pass) and real Postgres."""

from __future__ import annotations

import asyncio

from redis.asyncio.cluster import RedisCluster

from inventory.slot_engine import shard_from_id
from reservation.workers.persister import PassResult
from tests.api_fixture import Api
from tests.helpers import register
from tests.workers.test_persister import bookings, hold, make_persister, new_slot, pending


async def slots_in_distinct_shards(api: Api, count: int) -> list[str]:
    # A resource's slots share a shard: distinct resources until enough shards differ.
    slots: dict[int, str] = {}
    for n in range(200):
        if len(slots) == count:
            break
        code = f"dr-{n}"
        [slot] = await api.publish(
            "hosp-a", [api.slot(code=code)], resources=[{"code": code, "name": code}]
        )
        slots.setdefault(shard_from_id(slot["id"]), str(slot["id"]))
    assert len(slots) == count
    return list(slots.values())


async def test_one_pass_reads_every_shard_with_new_entries(api: Api) -> None:
    slot_ids = await slots_in_distinct_shards(api, 5)
    holds = [await hold(api, await register(api.client), s) for s in slot_ids]
    persister = make_persister(api)
    assert await persister.run_once() == PassResult(written=5)
    assert sorted(await bookings(api)) == sorted(holds)
    assert await persister.run_once() == PassResult()
    for slot_id in slot_ids:
        assert await pending(api, shard_from_id(slot_id)) == 0


async def test_the_background_loop_persists_what_arrives_while_it_waits(api: Api) -> None:
    persister = make_persister(api)
    stop = asyncio.Event()
    # Idle first: on a single node the loop is now blocked in XREADGROUP (BLOCK).
    running = asyncio.create_task(persister.run(stop, idle_sleep=0.05))
    slot_ids = await slots_in_distinct_shards(api, 3)
    holds = [await hold(api, await register(api.client), s) for s in slot_ids]
    for _ in range(400):  # up to ~20 s on a loaded machine; ends as soon as all are in
        if len(await bookings(api)) == len(holds):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, timeout=30)
    assert sorted(await bookings(api)) == sorted(holds)
    for slot_id in slot_ids:
        assert await pending(api, shard_from_id(slot_id)) == 0


async def test_on_a_cluster_idle_shards_wait_but_are_never_forgotten(api: Api) -> None:
    persister = make_persister(api, idle_backoff_min_s=3600.0, idle_backoff_max_s=3600.0)
    slot_id = await new_slot(api)
    assert await persister.run_once(skip_idle=True) == PassResult()  # every shard empty
    held = await hold(api, await register(api.client), slot_id)
    if isinstance(api.services.redis, RedisCluster):
        # The shard backs off (an hour here): the background loop's passes skip it...
        assert await persister.run_once(skip_idle=True) == PassResult()
        assert await bookings(api) == {}
    # ...and a pass that reads every shard (and, on a single node, any pass) finds it.
    assert await persister.run_once() == PassResult(written=1)
    assert list(await bookings(api)) == [held]
