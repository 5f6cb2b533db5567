"""Holding and confirming a series of slots at once (a vaccine's dose 1 with dose 2).

Every slot of a series belongs to one resource (a product at one site), hence to one
shard: ``slot_hold_series`` and ``slot_confirm_series`` each make the whole series happen
in one atomic script call, or nothing. Cancelling goes through the ordinary
``slot_release``, one hold at a time, last dose first (see the vaccine workflows).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inventory import errors
from inventory.scripts import script_source
from inventory.slot_codes import SlotCode, check
from inventory.slot_engine import SlotEngine, shard_from_id
from inventory.waitlist_keys import WaitlistKeys

MAX_SERIES = 8


class SeriesSpansShards(errors.InventoryError):
    code = "series_spans_shards"
    http_status = 422
    default_message = "The slots of one series must be of one resource (one site, one product)."


@dataclass(frozen=True, slots=True)
class SeriesHold:
    hold_ids: tuple[str, ...]
    deadline_ms: int
    state: str
    replay: bool


@dataclass(frozen=True, slots=True)
class SeriesConfirmed:
    hold_ids: tuple[str, ...]
    confirmed_ms: int
    person: str
    held_ms: int
    deadline_ms: int
    idempotency_key: str
    replay: bool


class SeriesRefused(errors.InventoryError):
    """Carries which dose (1-based) the refusal is about; ``cause`` is the typed error."""

    def __init__(self, cause: errors.InventoryError, dose_index: int) -> None:
        super().__init__(cause.message, dose_index=dose_index)
        self.cause = cause
        self.dose_index = dose_index


def _shard_of_all(ids: Sequence[str]) -> int:
    shards = {shard_from_id(i) for i in ids}
    if len(shards) != 1:
        raise SeriesSpansShards()
    return shards.pop()


def series_hold_from(result: Any, hold_ids: Sequence[str]) -> SeriesHold:
    """A series hold script's reply (slot_hold_series) as a
    ``SeriesHold``; a refusal raises ``SeriesRefused`` naming the dose refused, except a
    closed sale, which is the whole inventory's answer."""
    code = int(result[0])
    if code < 0:
        try:
            check(code)
        except errors.InventoryError as exc:
            if code == SlotCode.SALES_CLOSED:
                raise
            raise SeriesRefused(exc, int(result[1])) from exc
    return SeriesHold(
        hold_ids=tuple(hold_ids),
        deadline_ms=int(result[1]),
        state="held" if code == SlotCode.OK else str(result[2]),
        replay=code == SlotCode.REPLAY,
    )


class SeriesEngine:
    """Shares the slot engine's client, keys, pipelining and epoch guard."""

    def __init__(self, slots: SlotEngine) -> None:
        self.slots = slots
        self.keys = slots.keys
        self.wl = WaitlistKeys(slots.keys)
        self._hold = slots.client.register_script(script_source("slot_hold_series"))
        self._confirm = slots.client.register_script(script_source("slot_confirm_series"))

    async def expected_epoch(self) -> str:
        """The epoch the scripts will be asked to find. Callers that hold a Postgres
        connection across a script call read it first: refreshing it may need a connection
        of its own, and waiting for one while holding one can exhaust the pool."""
        guard = self.slots.guard
        return "" if guard is None else await guard.expected()

    async def call(
        self, script: Any, keys: list[str], args: list[Any], shard: int, expected: str | None
    ) -> Any:
        """The epoch marker is the last key, the expected epoch the last argument; one retry
        if a rebuild finished meanwhile (as ``SlotEngine`` does)."""
        keys = [*keys, self.keys.epoch(shard)]
        if expected is None:
            expected = await self.expected_epoch()
        result = await self.slots.calls.call(script, keys, [*args, expected])
        guard = self.slots.guard
        if int(result[0]) == SlotCode.SALES_CLOSED and guard is not None:
            with contextlib.suppress(Exception):
                fresh = (await guard.refresh()).expected
                if fresh != expected:
                    result = await self.slots.calls.call(script, keys, [*args, fresh])
        return result

    async def hold(
        self,
        *,
        slot_ids: Sequence[str],
        hold_ids: Sequence[str],
        account_id: str,
        person: str,
        series_id: str,
        idempotency_key: str,
        now_ms: int,
        deadline_ms: int,
        expected_epoch: str | None = None,
        replaces: Sequence[str] | None = None,
        piece_id: str = "",
        order_id: str = "",
    ) -> SeriesHold:
        """Hold one place in each slot for ``person``, all or nothing. Raises
        ``SeriesRefused`` (naming the dose) when a rule refuses; nothing changed then.

        ``replaces`` (a move): per dose, the old hold it replaces, or ''. The new hold may
        take over that hold's "one booking per resource per day" entry, so a dose moves to
        another time of the same day at the same site; the caller releases the old hold.

        ``piece_id`` (a vaccine waitlist order, ``order_id``): dose 1 takes that cooling
        piece, a place freed and held back for the line, instead of an open one."""
        if not 1 <= len(slot_ids) <= MAX_SERIES or len(slot_ids) != len(hold_ids):
            raise ValueError("1 to 8 slots, one hold id each")
        replaced = list(replaces) if replaces is not None else [""] * len(slot_ids)
        if len(replaced) != len(slot_ids):
            raise ValueError("one replaced hold ('' for none) per slot")
        shard = _shard_of_all([*slot_ids, *hold_ids])
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
        for slot_id, hold_id, old in zip(slot_ids, hold_ids, replaced, strict=True):
            meta = await self.slots.slot_meta(slot_id)
            keys += [
                self.keys.slot(shard, slot_id),
                self.keys.hold(shard, hold_id),
                self.keys.person_day(shard, meta.resource_id, meta.day),
            ]
            args += [hold_id, slot_id, old]
        keys += [
            self.keys.hold_deadlines(shard),
            self.keys.outbox(shard),
            self.wl.cooling(shard),
            self.wl.pieces(shard),
        ]
        args += [piece_id, order_id]
        result = await self.call(self._hold, keys, args, shard, expected_epoch)
        return series_hold_from(result, hold_ids)

    async def confirm(
        self,
        *,
        hold_ids: Sequence[str],
        account_id: str,
        series_id: str,
        now_ms: int,
        expected_epoch: str | None = None,
    ) -> SeriesConfirmed:
        """Confirm every hold of the series, or none (raises the typed refusal)."""
        shard = _shard_of_all(hold_ids)
        keys = [self.keys.hold(shard, h) for h in hold_ids]
        keys += [self.keys.hold_deadlines(shard), self.keys.outbox(shard)]
        result = await self.call(
            self._confirm,
            keys,
            [now_ms, account_id, series_id, len(hold_ids)],
            shard,
            expected_epoch,
        )
        code = check(int(result[0]))
        return SeriesConfirmed(
            hold_ids=tuple(hold_ids),
            confirmed_ms=int(result[1]),
            person=str(result[3]),
            held_ms=int(result[4]),
            deadline_ms=int(result[5]),
            idempotency_key=str(result[6]),
            replay=code == SlotCode.REPLAY,
        )


# Registering a script only computes its SHA; one engine per slot engine (per process)
# is kept here so that requests do not recompute it.
_ENGINES: weakref.WeakKeyDictionary[SlotEngine, SeriesEngine] = weakref.WeakKeyDictionary()


def series_engine(slots: SlotEngine) -> SeriesEngine:
    engine = _ENGINES.get(slots)
    if engine is None:
        engine = _ENGINES[slots] = SeriesEngine(slots)
    return engine
