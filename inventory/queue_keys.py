"""Redis keys of a sale's waiting room, on top of :class:`inventory.keys.Keys`.

Every key of one sale lives in the sale's shard, ``shard("sale:" + sale_id)``, so each
queue script touches one hash slot. A rush on one sale loads one shard; sales spread.
"""

from __future__ import annotations

from dataclasses import dataclass

from inventory.keys import Keys


@dataclass(frozen=True, slots=True)
class SaleKeys:
    meta: str  # hash: window, release, stock counters, pacing factor, status
    joins: str  # hash: account -> "join_id|arrival|joined_ms|late_rank"
    order: str  # zset: account -> position (1-based), written by the draw
    admitted: str  # zset: account -> admission deadline (ms)
    nonces: str  # hash: account -> its current queue-token nonce
    done: str  # set: accounts whose token-admitted hold succeeded


@dataclass(frozen=True, slots=True)
class QueueKeys:
    keys: Keys

    def shard(self, sale_id: str) -> int:
        return self.keys.shard("sale:" + sale_id)

    def sale(self, sale_id: str) -> SaleKeys:
        if not sale_id or "}" in sale_id or "{" in sale_id:
            raise ValueError(f"not a sale id: {sale_id!r}")
        base = f"{self.keys.tag(self.shard(sale_id))}:q:{sale_id}"
        return SaleKeys(
            meta=f"{base}:meta",
            joins=f"{base}:joins",
            order=f"{base}:order",
            admitted=f"{base}:admitted",
            nonces=f"{base}:nonces",
            done=f"{base}:done",
        )
