"""The slot path on a 3-master Redis Cluster: every script call stays in one hash slot,
and the persister reads every shard's outbox across nodes."""

from __future__ import annotations

import time

import pytest

from inventory.errors import SoldOut
from inventory.slot_engine import SlotSpec, hold_id_for, new_slot_id
from reservation.services import open_services
from reservation.settings import Settings
from reservation.workers.persister import Persister
from reservation.workflows.hold_slot import hold_within_cap

pytestmark = pytest.mark.cluster


async def test_slot_lifecycle_on_cluster(settings: Settings, redis_cluster_url: str) -> None:
    cluster_settings = settings.replace(redis_url=redis_cluster_url, redis_cluster=True)
    async with open_services(cluster_settings, pg_pool_size=2) as services:
        now = int(time.time() * 1000)
        # Resources spread over many shards, so over all three masters.
        specs = [
            SlotSpec(
                slot_id=new_slot_id(services.keys, f"res-{i}"),
                resource_id=f"res-{i}",
                day="2030-01-01",
                capacity=1,
                release_ms=now - 1,
                ends_ms=now + 3_600_000,
                retain_until_ms=now + 7_200_000,
            )
            for i in range(24)
        ]
        assert await services.slots.publish(specs) == [True] * 24
        assert await services.slots.publish(specs) == [False] * 24
        holds = []
        for i, spec in enumerate(specs):
            hold = await hold_within_cap(
                services.slots,
                services.gate,
                slot_id=spec.slot_id,
                hold_id=hold_id_for(spec.slot_id, f"{i:020x}"),
                account_id=f"acct{i}",
                person=f"p{i}",
                idempotency_key="k",
                now_ms=now,
                deadline_ms=now + 600_000,
                cap=3,
            )
            holds.append(hold)
        assert all(h.state == "held" for h in holds)
        with pytest.raises(SoldOut):
            await hold_within_cap(
                services.slots,
                services.gate,
                slot_id=specs[0].slot_id,
                hold_id=hold_id_for(specs[0].slot_id, "f" * 20),
                account_id="other",
                person="other",
                idempotency_key="k",
                now_ms=now,
                deadline_ms=now + 600_000,
                cap=3,
            )
        confirmed = await services.slots.confirm(
            hold_id=holds[0].hold_id, account_id="acct0", now_ms=now
        )
        assert confirmed.replay is False
        released = await services.slots.release(
            hold_id=holds[1].hold_id,
            slot_id=specs[1].slot_id,
            account_id="acct1",
            now_ms=now,
            state="cancelled",
            reason="test",
        )
        assert released.state == "cancelled"
        assert (await services.slots.available([specs[1].slot_id]))[specs[1].slot_id] == 1
        expired = 0
        for shard in range(services.keys.shard_count):
            expired += await services.slots.expire_due(shard, now + 600_000, 100)
        assert expired == 22  # all but the confirmed and the cancelled one

        # The outbox events reach Postgres from every node (FK-free check on events).
        persister = Persister(services, consumer="c", shards=list(range(services.keys.shard_count)))
        await persister.ensure_groups()
        async with services.pool.acquire() as conn:
            await conn.execute("ALTER TABLE bookings DROP CONSTRAINT bookings_slot_id_fkey")
            await conn.execute("ALTER TABLE bookings DROP CONSTRAINT bookings_account_id_fkey")
        total = 0
        for _ in range(5):
            total += (await persister.run_once()).written
        assert total == 24 + 1 + 1 + 22
        async with services.pool.acquire() as conn:
            states = dict(await conn.fetch("SELECT state, count(*) FROM bookings GROUP BY 1"))
        assert states == {"confirmed": 1, "cancelled": 1, "expired": 22}
