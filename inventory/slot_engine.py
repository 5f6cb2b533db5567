"""Thin async wrapper over the slot scripts: builds keys, calls one script, types the answer.

Slot and hold ids carry their logical shard (``s42-…``, ``h42-…``) so that every call can
build its keys without a lookup. All slots of one resource (a doctor, a vaccination
session) share a shard, which keeps "one booking per resource per day" inside one script.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inventory import errors
from inventory.epoch import EpochGuard
from inventory.keys import Keys
from inventory.replies import as_text
from inventory.script_client import ScriptClient
from inventory.scripts import script_source
from inventory.slot_codes import SeriesHold, SlotCode, check

if TYPE_CHECKING:
    from inventory.waitlist_engine import Freeing

_ID = re.compile(r"\A[sh](\d{1,4})-[0-9a-f]{8,40}\Z")


def shard_from_id(object_id: str) -> int:
    """The shard a slot or hold id names; unknown shapes are simply "not found"."""
    match = _ID.match(object_id)
    if match is None:
        raise errors.NotFoundInInventory()
    return int(match.group(1))


def new_slot_id(keys: Keys, resource_id: str) -> str:
    return f"s{keys.shard('res:' + resource_id)}-{secrets.token_hex(8)}"


def hold_id_for(slot_id: str, digest_hex: str) -> str:
    """A hold id in its slot's shard; ``digest_hex`` makes retries name the same hold."""
    return f"h{shard_from_id(slot_id)}-{digest_hex}"


@dataclass(frozen=True, slots=True)
class SlotSpec:
    slot_id: str
    resource_id: str
    day: str
    capacity: int
    release_ms: int
    ends_ms: int
    retain_until_ms: int


@dataclass(frozen=True, slots=True)
class SlotMeta:
    resource_id: str
    day: str
    ends_ms: int


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    slot_id: str
    deadline_ms: int
    state: str
    replay: bool


@dataclass(frozen=True, slots=True)
class ConfirmedHold:
    hold_id: str
    slot_id: str
    person: str
    held_ms: int
    deadline_ms: int
    confirmed_ms: int
    idempotency_key: str
    replay: bool


@dataclass(frozen=True, slots=True)
class Released:
    hold_id: str
    slot_id: str
    state: str
    replay: bool


@dataclass(frozen=True, slots=True)
class HoldView:
    hold_id: str
    slot_id: str
    account_id: str
    person: str
    state: str
    held_ms: int
    deadline_ms: int
    idempotency_key: str
    # The series (vaccine dose 1 + dose 2) the hold belongs to, if any: such a hold is
    # confirmed and cancelled only with the rest of its series.
    series: str | None = None


@dataclass(frozen=True, slots=True)
class RestoredSlot:
    slot_id: str
    capacity: int
    available: int
    release_ms: int
    ends_ms: int
    status: str
    retain_until_ms: int


@dataclass(frozen=True, slots=True)
class RestoredHold:
    hold_id: str
    slot_id: str
    account_id: str
    person: str
    state: str
    held_ms: int
    deadline_ms: int
    confirmed_ms: int | None
    ended_ms: int | None
    idempotency_key: str
    retain_until_ms: int
    series: str | None = None  # from the vaccine appointments (issue 6)


def hold_from(result: Any, *, hold_id: str, slot_id: str) -> Hold:
    """A slot hold script's reply (slot_hold, slot_transfer) as a ``Hold``; a refusal
    raises its typed ``InventoryError``."""
    code = check(int(result[0]))
    return Hold(
        hold_id=hold_id,
        slot_id=slot_id,
        deadline_ms=int(result[1]),
        state="held" if code == SlotCode.OK else as_text(result[2]),
        replay=code == SlotCode.REPLAY,
    )


class SlotEngine:
    """One per process; safe to share between tasks."""

    _META_CACHE_LIMIT = 200_000

    def __init__(
        self,
        client: Any,
        keys: Keys,
        *,
        calls: ScriptClient | None = None,
        guard: EpochGuard | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.calls = calls or ScriptClient(client)
        # Without a guard the scripts skip the epoch check: only for tests and tools that
        # own their Redis. The service installs one (reservation.workflows.rebuild_inventory).
        self.guard = guard
        # Where freed places go (inventory.waitlist_engine); None: straight back on sale.
        self.freeing: Freeing | None = None
        self._publish = client.register_script(script_source("slot_publish"))
        self._hold = client.register_script(script_source("slot_hold"))
        self._confirm = client.register_script(script_source("slot_confirm"))
        self._release = client.register_script(script_source("slot_release"))
        self._ping = client.register_script(script_source("ping"))
        self._restore = client.register_script(script_source("slot_restore"))
        # Slots never change resource or day once published, so this cache cannot go stale.
        self._meta: dict[str, SlotMeta] = {}

    # The epoch check ------------------------------------------------------------------
    async def _expected_epoch(self) -> str:
        return "" if self.guard is None else await self.guard.expected()

    async def guarded(self, script: Any, keys: list[str], args: list[Any], shard: int) -> Any:
        """One script call with the shard's epoch marker as its last key and the expected
        epoch as its last argument. A refusal for a closed epoch is retried once if the
        expected epoch changed meanwhile (a rebuild just finished elsewhere)."""
        keys = [*keys, self.keys.epoch(shard)]
        expected = await self._expected_epoch()
        result = await self.calls.call(script, keys, [*args, expected])
        if int(result[0]) == SlotCode.SALES_CLOSED and self.guard is not None:
            with contextlib.suppress(Exception):
                fresh = (await self.guard.refresh()).expected
                if fresh != expected:
                    result = await self.calls.call(script, keys, [*args, fresh])
        return result

    # Publishing and reading ------------------------------------------------------------
    async def publish(self, specs: Sequence[SlotSpec]) -> list[bool]:
        """Put slots on sale; returns, per slot, whether it was new to the live inventory.
        Raises ``SalesClosed`` (after a Redis loss): the rebuild puts them on sale then."""
        created: list[bool] = []
        for start in range(0, len(specs), 500):
            chunk = specs[start : start + 500]
            expected = await self._expected_epoch()
            for attempt in range(2):
                results = await self.calls.call_many(
                    [
                        (
                            self._publish,
                            [
                                self.keys.slot(shard_from_id(spec.slot_id), spec.slot_id),
                                self.keys.epoch(shard_from_id(spec.slot_id)),
                            ],
                            [
                                spec.capacity,
                                spec.release_ms,
                                spec.resource_id,
                                spec.day,
                                spec.retain_until_ms,
                                spec.ends_ms,
                                expected,
                            ],
                        )
                        if self.freeing is None
                        # Waitlist first for new stock too (issue 5): slot_publish_cool.
                        else self.freeing.publish_call(self, spec, expected)
                        for spec in chunk
                    ]
                )
                if all(int(r[0]) != SlotCode.SALES_CLOSED for r in results):
                    break
                if attempt == 0 and self.guard is not None:
                    fresh = (await self.guard.refresh()).expected
                    if fresh != expected:
                        expected = fresh
                        continue  # publishing is idempotent: the whole chunk again
                raise errors.SalesClosed()
            created.extend(int(r[0]) == SlotCode.OK for r in results)
        return created

    async def available(self, slot_ids: Sequence[str]) -> dict[str, int | None]:
        """Remaining places per slot (``None``: not in the live inventory)."""
        if not slot_ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for slot_id in slot_ids:
                pipe.hget(self.keys.slot(shard_from_id(slot_id), slot_id), "available")
            values = await pipe.execute()
        return {
            sid: (int(v) if v is not None else None)
            for sid, v in zip(slot_ids, values, strict=True)
        }

    async def slot_meta(self, slot_id: str) -> SlotMeta:
        meta = self._meta.get(slot_id)
        if meta is not None:
            return meta
        key = self.keys.slot(shard_from_id(slot_id), slot_id)
        resource_id, day, ends = await self.client.hmget(key, ["resource", "day", "ends"])
        if resource_id is None:
            if self.guard is not None:
                # A Redis that lost its data lost its slots too: closed, not "no such slot".
                marker = await self.client.get(self.keys.epoch(shard_from_id(slot_id)))
                if marker != await self.guard.expected():
                    raise errors.SalesClosed()
            raise errors.NotFoundInInventory("No such slot.")
        if len(self._meta) >= self._META_CACHE_LIMIT:
            self._meta.clear()
        meta = self._meta[slot_id] = SlotMeta(resource_id, day, int(ends))
        return meta

    async def read_hold(self, hold_id: str) -> HoldView | None:
        key = self.keys.hold(shard_from_id(hold_id), hold_id)
        h = await self.client.hgetall(key)
        if not h:
            return None
        return HoldView(
            hold_id=hold_id,
            slot_id=h["slot"],
            account_id=h["account"],
            person=h["person"],
            state=h["state"],
            held_ms=int(h["held"]),
            deadline_ms=int(h["deadline"]),
            idempotency_key=h.get("idem", ""),
            series=h.get("series"),
        )

    async def ping(self) -> None:
        """Runs a script: proves Redis is up *and* scripting works (used by /readyz)."""
        if int(await self.calls.call(self._ping, [], [])) != 1:
            raise RuntimeError("ping script returned an unexpected value")

    # Holds ----------------------------------------------------------------------------
    async def hold(
        self,
        *,
        slot_id: str,
        hold_id: str,
        account_id: str,
        person: str,
        idempotency_key: str,
        now_ms: int,
        deadline_ms: int,
    ) -> Hold:
        """Hold one place: one script call in the slot's shard. Raises a typed
        ``InventoryError`` when a rule refuses (nothing is changed then)."""
        shard = shard_from_id(slot_id)
        meta = await self.slot_meta(slot_id)
        result = await self.guarded(
            self._hold,
            [
                self.keys.slot(shard, slot_id),
                self.keys.hold(shard, hold_id),
                self.keys.person_day(shard, meta.resource_id, meta.day),
                self.keys.hold_deadlines(shard),
                self.keys.outbox(shard),
            ],
            [now_ms, hold_id, account_id, person, deadline_ms, slot_id, idempotency_key],
            shard,
        )
        return hold_from(result, hold_id=hold_id, slot_id=slot_id)

    async def confirm(self, *, hold_id: str, account_id: str, now_ms: int) -> ConfirmedHold:
        shard = shard_from_id(hold_id)
        result = await self.guarded(
            self._confirm,
            [
                self.keys.hold(shard, hold_id),
                self.keys.hold_deadlines(shard),
                self.keys.outbox(shard),
            ],
            [now_ms, hold_id, account_id],
            shard,
        )
        if int(result[0]) == SlotCode.SERIES_HOLD:
            raise SeriesHold.of(str(result[1]))
        code = check(int(result[0]))
        return ConfirmedHold(
            hold_id=hold_id,
            slot_id=str(result[1]),
            person=str(result[2]),
            held_ms=int(result[3]),
            deadline_ms=int(result[4]),
            confirmed_ms=int(result[5]),
            idempotency_key=str(result[6]),
            replay=code == SlotCode.REPLAY,
        )

    async def release(
        self,
        *,
        hold_id: str,
        slot_id: str,
        account_id: str | None,
        now_ms: int,
        state: str,
        reason: str,
    ) -> Released:
        """Cancel (``state='cancelled'``) or expire (``'expired'``) a hold or sale.

        ``account_id`` None acts for the system (sweeper, staff): ownership is then checked
        by the caller against the provider instead.
        """
        if self.freeing is not None:
            # Waitlist first, handoff defence (issue 5): the place goes to cooling.
            return await self.freeing.free_slot(
                self,
                hold_id=hold_id,
                slot_id=slot_id,
                account_id=account_id,
                now_ms=now_ms,
                state=state,
                reason=reason,
            )
        shard = shard_from_id(hold_id)
        meta = await self.slot_meta(slot_id)
        result = await self.guarded(
            self._release,
            [
                self.keys.hold(shard, hold_id),
                self.keys.slot(shard, slot_id),
                self.keys.person_day(shard, meta.resource_id, meta.day),
                self.keys.hold_deadlines(shard),
                self.keys.outbox(shard),
            ],
            [now_ms, hold_id, account_id or "", state, reason],
            shard,
        )
        code = check(int(result[0]))
        return Released(
            hold_id=hold_id,
            slot_id=str(result[2]),
            state=str(result[1]),
            replay=code == SlotCode.REPLAY,
        )

    # Rebuild ----------------------------------------------------------------------------
    async def restore_group(
        self,
        *,
        shard: int,
        resource_id: str,
        day: str,
        marker: str,
        slots: Sequence[RestoredSlot],
        holds: Sequence[RestoredHold],
        chunk: int = 32,
    ) -> None:
        """Rewrite one (resource, day) group from Postgres (``slot_restore``): slots, their
        holds of every state, the person-day index and the deadlines. Only while the shard's
        marker is ``marker`` (raises ``SalesClosed`` otherwise). Each call carries at most
        ``chunk`` slots and holds (~15 µs each in Redis), so none blocks Redis for long."""
        pday = self.keys.person_day(shard, resource_id, day)
        retain = max((s.retain_until_ms for s in slots), default=0)
        items: list[RestoredSlot | RestoredHold] = [*slots, *holds]
        for start in range(0, max(1, len(items)), chunk):
            part = items[start : start + chunk]
            group_slots = [i for i in part if isinstance(i, RestoredSlot)]
            group_holds = [i for i in part if isinstance(i, RestoredHold)]
            keys = [pday, self.keys.hold_deadlines(shard), self.keys.epoch(shard)]
            keys += [self.keys.slot(shard, s.slot_id) for s in group_slots]
            keys += [self.keys.hold(shard, h.hold_id) for h in group_holds]
            first = "1" if start == 0 else "0"
            args: list[Any] = [marker, first, len(group_slots), len(group_holds), retain]
            for s in group_slots:
                args += [s.capacity, s.available, s.release_ms, resource_id, day, s.status]
                args += [s.ends_ms, s.retain_until_ms]
            for h in group_holds:
                args += [h.slot_id, h.account_id, h.person, h.state, h.held_ms, h.deadline_ms]
                args += [h.confirmed_ms or "", h.ended_ms or "", h.idempotency_key]
                args += [h.retain_until_ms, h.series or ""]
            check(int((await self.calls.call(self._restore, keys, args))[0]))

    # Expiry ---------------------------------------------------------------------------
    async def due_holds(self, shard: int, now_ms: int, limit: int) -> list[str]:
        ids: list[str] = await self.client.zrangebyscore(
            self.keys.hold_deadlines(shard), "-inf", now_ms, start=0, num=limit
        )
        return ids

    async def expire_due(self, shard: int, now_ms: int, limit: int = 200) -> int:
        """Expire the shard's holds whose deadline has passed; returns how many."""
        expired = 0
        for hold_id in await self.due_holds(shard, now_ms, limit):
            hold_key = self.keys.hold(shard, hold_id)
            slot_id, kind = await self.client.hmget(hold_key, ["slot", "kind"])
            if slot_id is None:
                # Seat holds share the shard's deadline index; they are not ours to touch.
                # Only an entry whose hold is gone entirely (retention ended) is dropped.
                if kind is None and not await self.client.exists(hold_key):
                    await self.client.zrem(self.keys.hold_deadlines(shard), hold_id)
                continue
            try:
                released = await self.release(
                    hold_id=hold_id,
                    slot_id=slot_id,
                    account_id=None,
                    now_ms=now_ms,
                    state="expired",
                    reason="deadline",
                )
            except (errors.HoldNotLive, errors.NotFoundInInventory):
                continue
            except errors.SalesClosed:
                break  # nothing expires while the inventory waits for a rebuild
            expired += 0 if released.replay else 1
        return expired
