"""Freed stock goes to the waitlist first: the cooling path of every release, in Lua.

With a :class:`Freeing` installed on the slot and seat engines, a release (cancel, refund,
expiry, 改签 away) no longer puts the place straight back on open sale. In the same atomic
call that ends the hold, each freed place becomes a *cooling piece* held by the system
(``slot_free.lua``, ``seat_free.lua``): open-sale holds cannot see it. A piece leaves
cooling in exactly one of two ways, both single scripts in the stock's shard:

- ``*_transfer``: it becomes a waitlist order's hold (never passing through open sale);
- ``*_uncool``: back on open sale, once its cooling ended **and** no waitlist order waits
  on its unit, unless the caller passes the unit's generation read before it examined every
  waiting order (a filing bumps it, so an order filed meanwhile is never skipped).

Cooling lasts ``handoff`` milliseconds (drawn at random from a range) for a release made
by its owner (cancel, refund, 改签: the handoff defence), and 0 for an expiry (offered to
the waitlist, else back on sale at once). With no wait and nobody waiting, the engine puts
the piece back on sale in the next call, so an inventory without a waitlist behaves as
before. See docs/waitlist.md.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inventory import errors
from inventory.replies import as_text
from inventory.scripts import script_source
from inventory.seat_codes import SeatCode, error_for
from inventory.seat_model import Outcome, SeatHold, ref_from_tail
from inventory.slot_codes import SlotCode, check
from inventory.slot_engine import Hold, Released, hold_from, shard_from_id
from inventory.waitlist_keys import WaitlistKeys, seat_unit, slot_unit

if TYPE_CHECKING:
    from inventory.keys import Keys
    from inventory.seat_engine import SeatEngine
    from inventory.slot_engine import SlotEngine, SlotSpec

# Seat release modes that free seats; ``abort_change`` frees nothing and keeps seat_release.
SEAT_FREEING_MODES = frozenset({"cancel", "expire", "change", "release_one"})

UNCOOL_WAITING_SLOT = -13  # slot_uncool: an order waits on the unit
UNCOOL_WAITING_SEAT = -15  # seat_uncool: the same
NOT_DUE_SLOT = -11
NOT_DUE_SEAT = -9


@dataclass(frozen=True, slots=True)
class Piece:
    """One freed place in cooling: a slot place, or one seat on segments [a, b)."""

    piece_id: str
    shard: int
    kind: str  # 'slot' | 'seat'
    until_ms: int
    person: str  # who freed it (ID HMAC)
    freed_ms: int
    reason: str  # cancelled, expired, changed, released_one
    slot_id: str = ""
    run_id: str = ""
    seat_class: str = ""
    a: int = 0
    b: int = 0
    tail: str = ""

    @property
    def seat_unit(self) -> str:
        return seat_unit(self.run_id, self.seat_class)

    @property
    def ordinal(self) -> str:
        return self.tail[:5]


def parse_piece(piece_id: str, shard: int, until_ms: int, detail: str) -> Piece | None:
    """A piece from its description (the formats written by slot_free and seat_free)."""
    if detail.startswith("slot|"):
        parts = detail.split("|")
        if len(parts) < 6:
            return None
        return Piece(
            piece_id, shard, "slot", until_ms, parts[2], int(parts[3]), parts[4], slot_id=parts[1]
        )
    if detail.startswith("seat|"):
        parts = detail.split("|", 9)
        if len(parts) < 10:
            return None
        return Piece(
            piece_id,
            shard,
            "seat",
            until_ms,
            parts[5],
            int(parts[6]),
            parts[7],
            run_id=parts[1],
            seat_class=parts[2],
            a=int(parts[3]),
            b=int(parts[4]),
            tail=parts[9],
        )
    return None


class Freeing:
    """Installed on a SlotEngine and a SeatEngine (``engine.freeing``); one per process."""

    def __init__(
        self,
        client: Any,
        keys: Keys,
        *,
        handoff_ms: tuple[int, int] = (30_000, 120_000),
        rng: random.Random | None = None,
    ) -> None:
        low, high = handoff_ms
        if not 0 <= low <= high:
            raise ValueError("handoff delay range must satisfy 0 <= low <= high")
        self.client = client
        self.keys = keys
        self.wl = WaitlistKeys(keys)
        self.handoff_ms = (low, high)
        # Not predictable from outside: a delay someone could compute is no defence.
        self.rng = rng or random.SystemRandom()
        register = client.register_script
        self._slot_publish = register(script_source("slot_publish_cool"))
        self._slot_free = register(script_source("slot_free"))
        self._slot_uncool = register(script_source("slot_uncool"))
        self._slot_transfer = register(script_source("slot_transfer"))
        self._seat_free = register(script_source("seat_free"))
        self._seat_uncool = register(script_source("seat_uncool"))
        self._seat_transfer = register(script_source("seat_transfer"))
        self._unit = register(script_source("waitlist_unit"))

    def cool_until(self, now_ms: int, *, handoff: bool) -> int:
        """When a freed place may go back on open sale: after a random handoff delay when
        its owner gave it up, at once (after the waitlist's turn) when it expired."""
        if not handoff:
            return now_ms
        low, high = self.handoff_ms
        return now_ms + (low if low == high else self.rng.randint(low, high))

    # Slots ---------------------------------------------------------------------------
    async def free_slot(
        self,
        engine: SlotEngine,
        *,
        hold_id: str,
        slot_id: str,
        account_id: str | None,
        now_ms: int,
        state: str,
        reason: str,
    ) -> Released:
        """What ``SlotEngine.release`` does with a Freeing installed."""
        shard = shard_from_id(hold_id)
        meta = await engine.slot_meta(slot_id)
        until = self.cool_until(now_ms, handoff=state == "cancelled")
        result = await engine.guarded(
            self._slot_free,
            [
                engine.keys.hold(shard, hold_id),
                engine.keys.slot(shard, slot_id),
                engine.keys.person_day(shard, meta.resource_id, meta.day),
                engine.keys.hold_deadlines(shard),
                engine.keys.outbox(shard),
                self.wl.cooling(shard),
                self.wl.pieces(shard),
            ],
            [now_ms, hold_id, account_id or "", state, reason, until],
            shard,
        )
        code = check(int(result[0]))
        piece = as_text(result[4])
        if piece and until <= now_ms:
            await self.uncool_slot(engine, piece, slot_id, now_ms=now_ms)
        return Released(
            hold_id=hold_id,
            slot_id=as_text(result[2]),
            state=as_text(result[1]),
            replay=code == SlotCode.REPLAY,
        )

    def publish_call(
        self, engine: SlotEngine, spec: SlotSpec, expected: str
    ) -> tuple[Any, list[str], list[Any]]:
        """``SlotEngine.publish``'s call for one slot with a Freeing installed: a slot
        published where waitlist orders wait puts its places in cooling until its release
        (``slot_publish_cool``), so new stock is offered to the waitlist first."""
        shard = shard_from_id(spec.slot_id)
        return (
            self._slot_publish,
            [
                engine.keys.slot(shard, spec.slot_id),
                self.wl.unit(shard, slot_unit(spec.resource_id, spec.day)),
                self.wl.cooling(shard),
                self.wl.pieces(shard),
                engine.keys.epoch(shard),
            ],
            [
                spec.capacity,
                spec.release_ms,
                spec.resource_id,
                spec.day,
                spec.retain_until_ms,
                spec.ends_ms,
                spec.slot_id,
                expected,
            ],
        )

    async def uncool_slot(
        self, engine: SlotEngine, piece_id: str, slot_id: str, *, now_ms: int, gen: str = ""
    ) -> int:
        """Put a cooling slot place back on sale; returns the script's code (0 done, 1/2
        gone or stale, -11 not due, -13 an order waits)."""
        shard = shard_from_id(slot_id)
        meta = await engine.slot_meta(slot_id)
        result = await engine.guarded(
            self._slot_uncool,
            [
                self.wl.cooling(shard),
                self.wl.pieces(shard),
                engine.keys.slot(shard, slot_id),
                self.wl.unit(shard, slot_unit(meta.resource_id, meta.day)),
            ],
            [now_ms, piece_id, gen],
            shard,
        )
        code = int(result[0])
        if code == SlotCode.SALES_CLOSED:
            raise errors.SalesClosed()
        return code

    async def transfer_slot(
        self,
        engine: SlotEngine,
        *,
        piece_id: str,
        slot_id: str,
        hold_id: str,
        account_id: str,
        person: str,
        deadline_ms: int,
        order_id: str,
        now_ms: int,
    ) -> Hold:
        """A waitlist order's hold on a cooling place (``piece_id``) or an open one ('')."""
        shard = shard_from_id(slot_id)
        meta = await engine.slot_meta(slot_id)
        result = await engine.guarded(
            self._slot_transfer,
            [
                self.wl.cooling(shard),
                self.wl.pieces(shard),
                engine.keys.slot(shard, slot_id),
                engine.keys.hold(shard, hold_id),
                engine.keys.person_day(shard, meta.resource_id, meta.day),
                engine.keys.hold_deadlines(shard),
                engine.keys.outbox(shard),
            ],
            [now_ms, piece_id, hold_id, account_id, person, deadline_ms, slot_id, order_id],
            shard,
        )
        return hold_from(result, hold_id=hold_id, slot_id=slot_id)

    # Seats ---------------------------------------------------------------------------
    async def free_seat(
        self,
        engine: SeatEngine,
        *,
        hold_id: str,
        mode: str,
        account_id: str,
        extra: str,
        now_ms: int,
        where: tuple[str, str],
    ) -> Outcome:
        """What ``SeatEngine``'s release modes do with a Freeing installed."""
        u = engine.unit(*where)
        until = self.cool_until(now_ms, handoff=mode != "expire")
        reply = await engine.guarded(
            self._seat_free,
            [
                u.meta,
                u.seats,
                u.pax,
                engine.keys.hold(hold_id),
                u.deadlines,
                u.outbox,
                self.wl.cooling(u.shard),
                self.wl.pieces(u.shard),
            ],
            [now_ms, hold_id, mode, account_id, engine.keep_ms, extra, until],
            u.shard,
        )
        code = int(reply[0])
        if code < 0:
            fields = {"state": as_text(reply[1])} if len(reply) > 1 else {}
            raise error_for(code, **fields)
        if code == SeatCode.OK and until <= now_ms:
            for piece in reply[2:]:
                await self.uncool_seat(engine, as_text(piece), where, now_ms=now_ms)
        return Outcome(hold_id, as_text(reply[1]), code == SeatCode.OK)

    async def uncool_seat(
        self,
        engine: SeatEngine,
        piece_id: str,
        where: tuple[str, str],
        *,
        now_ms: int,
        gen: str = "",
    ) -> int:
        """Free a cooling seat piece for open sale; the script's code (0 done, 1 gone or
        stale, -9 not due, -15 an order waits)."""
        u = engine.unit(*where)
        reply = await engine.guarded(
            self._seat_uncool,
            [
                *u.inventory[:6],
                self.wl.cooling(u.shard),
                self.wl.pieces(u.shard),
                self.wl.unit(u.shard, seat_unit(*where)),
            ],
            [now_ms, piece_id, gen],
            u.shard,
        )
        code = int(reply[0])
        if code in (SeatCode.SALES_CLOSED, SeatCode.CORRUPT, SeatCode.BAD_REQUEST):
            raise error_for(code)
        return code

    async def transfer_seats(
        self,
        engine: SeatEngine,
        *,
        run_id: str,
        seat_class: str,
        a: int,
        b: int,
        pieces: Sequence[str],
        passengers: Sequence[str],
        hold_id: str,
        account_id: str,
        deadline_ms: int,
        fingerprint: str,
        order_id: str,
        now_ms: int,
    ) -> SeatHold:
        """A waitlist order's seat hold made of cooling pieces, one per passenger."""
        u = engine.unit(run_id, seat_class)
        pairs: list[str] = []
        for piece, person in zip(pieces, passengers, strict=True):
            pairs += [piece, person]
        reply = await engine.guarded(
            self._seat_transfer,
            [
                u.meta,
                u.pax,
                engine.keys.hold(hold_id),
                u.deadlines,
                u.outbox,
                self.wl.cooling(u.shard),
                self.wl.pieces(u.shard),
            ],
            [now_ms, hold_id, account_id, a, b, deadline_ms, fingerprint, order_id, *pairs],
            u.shard,
        )
        code = int(reply[0])
        if code < 0:
            fields = {"passenger": as_text(reply[1])} if len(reply) > 1 else {}
            raise error_for(code, **fields)
        return SeatHold(
            hold_id=as_text(reply[1]),
            run_id=run_id,
            seat_class=seat_class,
            seats=tuple(ref_from_tail(as_text(t)) for t in reply[4:]),
            segments=(a, b),
            deadline_ms=int(reply[2]),
            wish_met=False,
            replayed=code == SeatCode.REPLAY,
        )

    # Waiting demand and the pieces in cooling ------------------------------------------
    async def enroll(self, unit: str, order_id: str, *, leave: bool = False) -> tuple[int, int]:
        """The order starts (or stops) waiting on a unit: (orders waiting, generation)."""
        shard = self.wl.unit_shard(unit)
        reply = await self._unit(
            keys=[self.wl.unit(shard, unit)], args=["leave" if leave else "enroll", order_id]
        )
        return int(reply[1]), int(reply[2])

    async def generation(self, unit: str) -> str:
        """The unit's generation now ('' if nobody ever waited on it)."""
        value = await self.client.hget(self.wl.unit(self.wl.unit_shard(unit), unit), "gen")
        return "" if value is None else as_text(value)

    async def pieces(self, shard: int, limit: int = 500) -> list[Piece]:
        """The shard's pieces in cooling, soonest end first."""
        entries = await self.client.zrange(self.wl.cooling(shard), 0, limit - 1, withscores=True)
        if not entries:
            return []
        ids = [as_text(member) for member, _ in entries]
        details = await self.client.hmget(self.wl.pieces(shard), ids)
        out = []
        for (member, score), detail in zip(entries, details, strict=True):
            piece = parse_piece(as_text(member), shard, int(score), as_text(detail or ""))
            if piece is not None:
                out.append(piece)
        return out

    async def drop_piece(self, piece: Piece) -> None:
        """Forget a piece whose slot left the live inventory (nothing to give or free)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(self.wl.cooling(piece.shard), piece.piece_id)
            pipe.hdel(self.wl.pieces(piece.shard), piece.piece_id)
            await pipe.execute()

    async def busy_shards(self, shards: Sequence[int]) -> list[int]:
        """The shards that have pieces in cooling (one pipelined ZCARD each)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for shard in shards:
                pipe.zcard(self.wl.cooling(shard))
            counts = await pipe.execute()
        return [s for s, n in zip(shards, counts, strict=True) if int(n) > 0]
