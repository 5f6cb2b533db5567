"""The one module that builds Redis keys.

Every key of one inventory unit (a resource's slots, a train run's seats) and its shard's
outbox stream carry the same hash tag ``{sNNN}``, so one script call touches one slot of a
Redis Cluster. Lua scripts never build keys themselves: they receive them in ``KEYS``.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass


def shard_of(unit: str, shard_count: int) -> int:
    """The logical shard of an inventory unit: stable across processes and releases."""
    return zlib.crc32(unit.encode()) % shard_count


@functools.lru_cache(maxsize=1 << 12)
def _tag(prefix: str, shard: int) -> str:
    # Every key of a request starts with it: formatted once per shard, not per key.
    return f"{prefix}:{{s{shard:03d}}}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "fs"
    shard_count: int = 256

    def tag(self, shard: int) -> str:
        return _tag(self.prefix, shard)

    def shard(self, unit: str) -> int:
        return shard_of(unit, self.shard_count)

    # Per shard -------------------------------------------------------------------
    def outbox(self, shard: int) -> str:
        """Stream of inventory events, read by the persister (and later the notifier)."""
        return f"{self.tag(shard)}:outbox"

    def dead_letters(self, shard: int) -> str:
        """Stream of outbox entries the persister could not write after N deliveries."""
        return f"{self.tag(shard)}:dead"

    def hold_deadlines(self, shard: int) -> str:
        """Sorted set hold id -> payment deadline (ms), scanned by the expiry sweeper."""
        return f"{self.tag(shard)}:deadlines"

    def epoch(self, shard: int) -> str:
        """Marker written by a rebuild; its absence means this Redis lost data."""
        return f"{self.tag(shard)}:epoch"

    # Slots -------------------------------------------------------------------------
    def slot(self, shard: int, slot_id: str) -> str:
        return f"{self.tag(shard)}:slot:{slot_id}"

    def hold(self, shard: int, hold_id: str) -> str:
        return f"{self.tag(shard)}:hold:{hold_id}"

    def idempotency(self, shard: int, account_id: str, key: str) -> str:
        return f"{self.tag(shard)}:idem:{account_id}:{key}"

    def person_day(self, shard: int, resource_id: str, day: str) -> str:
        """Hash person -> hold id: "one active booking per resource per day"."""
        return f"{self.tag(shard)}:pday:{resource_id}:{day}"

    # Accounts ----------------------------------------------------------------------
    def person_lock(self, person: str) -> str:
        """A short mutex on one person (inventory/lua/person_lock.lua), in their shard."""
        return f"{self.tag(self.shard('person:' + person))}:plock:{person}"

    def account_holds(self, account_id: str) -> str:
        """Sorted set of an account's live holds (member = idempotency key, score =
        deadline), in the account's own shard: the cap on concurrent holds."""
        return f"{self.tag(self.shard('acct:' + account_id))}:acctholds:{account_id}"
