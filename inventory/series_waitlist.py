"""A vaccine waitlist order's series from a cooling place (``slot_hold_series_cooled``).

Dose 1 takes the freed place held back for the line (a cooling piece), the later doses
open places at the same resource (one shard), all or nothing, as ``slot_hold_series``
holds them: the holds carry the series marker, so the generic confirm/cancel refuse them.
Shares the series engine's client, keys, pipelining and epoch guard.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from inventory.scripts import script_source
from inventory.series_engine import (
    SeriesEngine,
    SeriesHold,
    SeriesSpansShards,
    series_engine,
    series_hold_from,
)
from inventory.slot_engine import SlotEngine, shard_from_id
from inventory.waitlist_keys import WaitlistKeys


class CooledSeries:
    def __init__(self, slots: SlotEngine) -> None:
        self.series: SeriesEngine = series_engine(slots)
        self.slots = slots
        self.keys = slots.keys
        self.wl = WaitlistKeys(slots.keys)
        self._hold = slots.client.register_script(script_source("slot_hold_series_cooled"))

    async def hold(
        self,
        *,
        piece_id: str,
        slot_ids: Sequence[str],
        hold_ids: Sequence[str],
        account_id: str,
        person: str,
        series_id: str,
        idempotency_key: str,
        order_id: str,
        now_ms: int,
        deadline_ms: int,
    ) -> SeriesHold:
        """Raises ``SeriesRefused`` naming the dose when a rule refuses (nothing changed)."""
        if not 1 <= len(slot_ids) <= 8 or len(slot_ids) != len(hold_ids):
            raise ValueError("1 to 8 slots, one hold id each")
        shards = {shard_from_id(i) for i in [*slot_ids, *hold_ids]}
        if len(shards) != 1:
            raise SeriesSpansShards()
        shard = shards.pop()
        keys: list[str] = []
        args: list[Any] = [
            now_ms,
            account_id,
            person,
            deadline_ms,
            idempotency_key,
            series_id,
            len(slot_ids),
        ]
        for slot_id, hold_id in zip(slot_ids, hold_ids, strict=True):
            meta = await self.slots.slot_meta(slot_id)
            keys += [
                self.keys.slot(shard, slot_id),
                self.keys.hold(shard, hold_id),
                self.keys.person_day(shard, meta.resource_id, meta.day),
            ]
            args += [hold_id, slot_id, ""]
        keys += [
            self.keys.hold_deadlines(shard),
            self.keys.outbox(shard),
            self.wl.cooling(shard),
            self.wl.pieces(shard),
        ]
        args += [piece_id, order_id]
        result = await self.series.call(self._hold, keys, args, shard, None)
        return series_hold_from(result, hold_ids)


_ENGINES: weakref.WeakKeyDictionary[SlotEngine, CooledSeries] = weakref.WeakKeyDictionary()


def cooled_series(slots: SlotEngine) -> CooledSeries:
    """One per slot engine (registering a script computes its SHA once)."""
    engine = _ENGINES.get(slots)
    if engine is None:
        engine = _ENGINES[slots] = CooledSeries(slots)
    return engine
