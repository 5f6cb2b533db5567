"""The expiry sweeper: returns the places and seats of holds whose payment deadline passed.

Slot holds and seat holds share each shard's deadline index; the slot engine skips seat
holds, and seat holds are expired here one by one through ``SeatEngine.expire`` (which
also settles a pending 改签 at its old ticket first).

With the service's ``Freeing`` installed on the engines (issue 5), an expired place goes
to cooling: offered to the waitlist first, back on sale at once if nobody waits
(docs/waitlist.md).

Idempotent and safe to run in several processes at once (the Lua script ends a hold
exactly once); like the persisters, sweepers split the shards between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from reservation.services import Services

log = logging.getLogger("fairseat.sweeper")


@dataclass
class Sweeper:
    services: Services
    shards: list[int]
    batch: int = 200

    async def run_once(self) -> int:
        now = self.services.clock()
        keys = self.services.keys
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.zrangebyscore(keys.hold_deadlines(shard), "-inf", now, start=0, num=1)
            due = await pipe.execute()
        expired = 0
        for shard, ids in zip(self.shards, due, strict=True):
            if ids:
                expired += await self.services.slots.expire_due(shard, now, self.batch)
                expired += await self._expire_seats(shard, now)
        if expired:
            self.services.metrics.expired.inc(expired)
        return expired

    async def _expire_seats(self, shard: int, now: int) -> int:
        outcomes = await self.services.seats.expire_due(shard, now_ms=now, limit=self.batch)
        # A committed 改签 is confirmed instead: not an expiry.
        return sum(1 for o in outcomes if o.changed and o.state == "expired")

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("sweeper pass failed: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
