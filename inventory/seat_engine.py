"""The seat inventory on Redis: a thin async wrapper around ``inventory/lua/seat_*.lua``.

Each operation is one script call in the run's shard (plus, for cancel and expire, one read
of the hold's run and class to name its keys). Refusals come back as negative codes and are
raised as the typed errors of :mod:`inventory.seat_codes`. :class:`inventory.seat_model.
SeatModel` is the reference this engine is tested against, operation by operation.

改签 (change) spans two shards and is built from idempotent steps:
1. hold the new seat in the new run's shard, marked ``change_of=<old hold>``;
2. decide at the old ticket (old shard): *commit* releases the old seat as ``changed``;
3. confirm the new hold (allowed past its deadline once committed).
The old ticket's record is the single place the change is decided. A crash before 2 leaves
the old ticket intact and a pending new hold that nobody can confirm or cancel by accident;
at its deadline the sweeper (:meth:`SeatEngine.expire`) records *abort* at the old ticket
first and only then frees the new seat. A crash after 2 leaves a committed change: a retry
of :meth:`SeatEngine.change` with the same key, or the sweeper, finds the commit and
confirms the new hold. So the passenger always holds the old seat, the new one, or both for
a moment, never neither; every seat-segment is returned exactly once.

Outbox events (the shard's stream, appended in the same script call as the change):
``type`` (held, confirmed, cancelled, expired, released), ``hold``, ``kind=seat``, ``run``,
``cls``, ``acct``, ``a``, ``b``, ``seats`` (";"-joined ``ordinal|coach|row|letter|position``
in passenger order), ``pax`` (","-joined passenger ids), ``at`` (now_ms); held adds
``deadline`` and ``change_of``, confirmed adds ``change_of``, the releases add ``reason`` and
``changed_to`` (the new hold of a 改签).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from inventory import hold_record
from inventory.epoch import EpochGuard
from inventory.errors import HoldNotLive, InventoryError, NotOwner, SalesClosed
from inventory.keys import Keys
from inventory.replies import as_text
from inventory.script_client import ScriptClient
from inventory.scripts import script_source
from inventory.seat_codes import ChangeAborted, SeatCode, error_for
from inventory.seat_keys import HASHTABLE_FIELD, HASHTABLE_VALUE, SeatKeys, SeatUnitKeys
from inventory.seat_model import (
    HoldInfo,
    Outcome,
    SeatHold,
    SeatRef,
    SeatSpec,
    check_hold_request,
    hold_fingerprint,
    map_fingerprint,
    ref_from_tail,
    seat_map,
)
from inventory.segments import (
    MAX_SEGMENTS,
    Remaining,
    check_trip,
    free_gaps,
    popcount,
    remaining_from_patterns,
)

if TYPE_CHECKING:
    from inventory.waitlist_engine import Freeing

__all__ = [
    "HoldInfo",
    "Outcome",
    "RestoredSeatHold",
    "SeatEngine",
    "SeatHold",
    "SeatRef",
    "SeatSpec",
    "UnitState",
    "unit_state",
]

Client = Redis | RedisCluster


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _counts(raw: dict[Any, Any]) -> dict[str, int]:
    """A pcount hash as read: its counts, without the hashtable field. (Read by every
    uncached 余票 query: fields are decoded only when the client hands over bytes.)"""
    return {
        k: int(v)
        for f, v in raw.items()
        if (k := f if type(f) is str else as_text(f)) != HASHTABLE_FIELD
    }


@dataclass(frozen=True, slots=True)
class UnitState:
    """What a (run, class) map derives from its seats' patterns (see ``seat_keys``)."""

    pcount: dict[str, int]
    gapidx: set[str]
    gaps: bytes


def unit_state(nseg: int, records: Iterable[str]) -> UnitState:
    """The derived structures of a map whose seats are ``"<pattern>|<tail>"`` records: what
    seat_load and every hold and release keep up to date, computed from scratch (the
    rebuild writes it, ``audit`` compares with it)."""
    pcount: dict[str, int] = {}
    for record in records:
        pattern = record[:nseg]
        pcount[pattern] = pcount.get(pattern, 0) + 1
    gapidx: set[str] = set()
    top: dict[tuple[int, int], int] = {}
    for pattern in pcount:
        for g0, g1 in free_gaps(pattern):
            gapidx.add(f"{g0:02d}{g1:02d}|{popcount(pattern):02d}|{pattern}")
            top[(g0, g1)] = max(top.get((g0, g1), -1), popcount(pattern))
    cells = bytearray((nseg + 1) ** 2)
    for (g0, g1), pop in top.items():
        cells[g0 * (nseg + 1) + g1] = pop + 1
    return UnitState(pcount, gapidx, bytes(cells))


@dataclass(frozen=True, slots=True)
class RestoredSeatHold:
    """A seat hold as Postgres knows it (its tickets), to be written back to Redis."""

    hold_id: str
    run_id: str
    seat_class: str
    account_id: str
    segments: tuple[int, int]
    tails: tuple[str, ...]  # in passenger order
    passengers: tuple[str, ...]  # ID HMACs, in passenger order
    state: str  # held, confirmed, cancelled, expired, changed
    deadline_ms: int
    fingerprint: str
    confirmed_ms: int | None = None
    ended_ms: int | None = None
    change_of: str = ""
    changed_to: str = ""
    gone: tuple[tuple[int, int], ...] = ()  # (place, when ms) of seats returned one by one
    expire_at_ms: int | None = None  # ended holds: when the record goes (None: kept)

    @property
    def live(self) -> bool:
        return self.state in ("held", "confirmed")

    @property
    def live_places(self) -> list[int]:
        gone = {place for place, _ in self.gone}
        return [i for i in range(1, len(self.tails) + 1) if i not in gone] if self.live else []

    @property
    def live_passengers(self) -> list[str]:
        return [self.passengers[i - 1] for i in self.live_places]

    @property
    def indexed_deadline(self) -> int | None:
        return self.deadline_ms if self.state == "held" else None

    def fields(self) -> dict[str, str]:
        """The record's fields by name, as seat_hold, seat_confirm and seat_release write
        them (:func:`inventory.hold_record.record_fields` reads a stored record so)."""
        out = {
            "kind": "seat",
            "run": self.run_id,
            "cls": self.seat_class,
            "acct": self.account_id,
            "a": str(self.segments[0]),
            "b": str(self.segments[1]),
            "seats": ";".join(self.tails),
            "pax": ",".join(self.passengers),
            "state": self.state,
            "deadline": str(self.deadline_ms),
            "change_of": self.change_of,
            "fp": self.fingerprint,
            "wish_met": "0",  # not kept in Postgres; only a replayed answer shows it
        }
        if self.confirmed_ms is not None:
            out["confirmed"] = str(self.confirmed_ms)
        if self.changed_to or not self.live:
            out["changed_to"] = self.changed_to
        if self.ended_ms is not None and not self.live:
            out["ended"] = str(self.ended_ms)
        if self.gone:
            out["gone"] = "," + ",".join(str(p) for p, _ in self.gone) + ","
            for place, at in self.gone:
                out[f"gone_at:{place}"] = str(at)
        return out

    def record(self) -> dict[str, str]:
        """The record as stored: the fixed fields packed in one (``inventory.hold_record``)."""
        fields = self.fields()
        out = {name: value for name, value in fields.items() if name not in hold_record.FIXED}
        out[hold_record.FIELD] = hold_record.pack(fields)
        return out


def _refusal(reply: list[Any], detail: str = "") -> InventoryError:
    fields = {detail: as_text(reply[1])} if detail and len(reply) > 1 else {}
    return error_for(int(reply[0]), **fields)


class SeatEngine:
    def __init__(
        self,
        client: Client,
        keys: Keys,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        hold_ms: int = 15 * 60_000,
        keep_ms: int = 7 * 86_400_000,
        guard: EpochGuard | None = None,
        calls: ScriptClient | None = None,
    ) -> None:
        self.client = client
        self.keys = SeatKeys(keys)
        # The service passes its pipelining client (shared with SlotEngine): redis-py's own
        # per-call path costs an HTTP worker several times the CPU per script call. Without
        # one (tests, tools) calls stay on redis-py's path and open no connections of ours.
        self.calls = calls or ScriptClient(client, pipelining=False)
        # Without a guard the scripts skip the epoch check: only for tests and tools that
        # own their Redis. The service installs one (reservation.workflows.rebuild_inventory).
        self.guard = guard
        # Where freed seats go (inventory.waitlist_engine); None: straight back on sale.
        self.freeing: Freeing | None = None
        self.clock = clock
        self.hold_ms = hold_ms
        self.keep_ms = keep_ms  # lifetime of finished holds and of replay records
        self._load = client.register_script(script_source("seat_load"))
        self._hold = client.register_script(script_source("seat_hold"))
        self._confirm = client.register_script(script_source("seat_confirm"))
        self._release = client.register_script(script_source("seat_release"))
        self._restore = client.register_script(script_source("seat_restore"))
        self._restore_holds = client.register_script(script_source("seat_restore_holds"))
        self._units: dict[tuple[str, str], SeatUnitKeys] = {}
        self._nseg: dict[tuple[str, str], int] = {}

    # The epoch check (issue 4) ------------------------------------------------------------
    def guarded(self, script: Any, keys: list[str], args: list[Any], shard: int) -> Awaitable[Any]:
        """One script call with the shard's epoch marker as its last key and the expected
        epoch as its last argument (as SlotEngine does). A refusal for a closed epoch is
        retried once if the expected epoch changed meanwhile (a rebuild just finished).
        Unguarded (tests, tools, benches) it is the bare call: no coroutine frame of its own.
        It appends to ``keys`` and ``args``: callers pass fresh lists."""
        keys.append(self.keys.keys.epoch(shard))
        return self._call(script, keys, args)

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Awaitable[Any]:
        # As guarded, for keys that end with the epoch marker already (the unit's own).
        if self.guard is None:
            args.append("")
            return self.calls.call(script, keys, args)
        return self._guarded_call(self.guard, script, keys, args)

    async def _guarded_call(
        self, guard: EpochGuard, script: Any, keys: list[str], args: list[Any]
    ) -> Any:
        expected = await guard.expected()
        reply = await self.calls.call(script, keys, [*args, expected])
        if int(reply[0]) == SeatCode.SALES_CLOSED:
            with contextlib.suppress(Exception):
                fresh = (await guard.refresh()).expected
                if fresh != expected:
                    reply = await self.calls.call(script, keys, [*args, fresh])
        return reply

    async def _epoch_valid(self, shard: int) -> bool:
        if self.guard is None:
            return True
        marker = await self.client.get(self.keys.keys.epoch(shard))
        return as_text(marker) == await self.guard.expected() if marker is not None else False

    def unit(self, run_id: str, seat_class: str) -> SeatUnitKeys:
        found = self._units.get((run_id, seat_class))
        if found is None:
            found = self._units[(run_id, seat_class)] = self.keys.unit(run_id, seat_class)
        return found

    # publish ------------------------------------------------------------------------------
    async def publish(
        self, run_id: str, seat_class: str, nseg: int, seats: Iterable[SeatSpec]
    ) -> bool:
        """Publish a seat map, every seat free. True if published now, False if this same
        map was already there (sold seats stay sold); AlreadyExists for a different map."""
        check_trip(nseg, 0, nseg)
        tails = seat_map(seat_class, seats)
        u = self.unit(run_id, seat_class)
        reply = await self._call(
            self._load,
            [*u.inventory[:6], u.epoch],
            [nseg, map_fingerprint(nseg, seat_class, tails), run_id, seat_class, *tails],
        )
        if int(reply[0]) < 0:
            raise _refusal(reply)
        return int(reply[0]) == SeatCode.OK

    # hold ---------------------------------------------------------------------------------
    async def hold(
        self,
        account_id: str,
        run_id: str,
        seat_class: str,
        a: int,
        b: int,
        passengers: Sequence[str],
        *,
        idempotency_key: str,
        wish: str = "",
        deadline_ms: int | None = None,
        now_ms: int | None = None,
        change_of: str = "",
    ) -> SeatHold:
        """Hold one seat per passenger on segments ``[a, b)``, all or nothing.

        ``wish`` is a position (window, aisle, middle, upper, lower): met when one seat of the
        party has it; the hold goes ahead either way and ``wish_met`` tells. A retry with the
        same ``idempotency_key`` gets the first answer back (``replayed=True``) for as long as
        the hold exists; the key with a different request is refused. ``change_of`` is set by
        :meth:`change` only.
        """
        now = self.clock() if now_ms is None else now_ms
        deadline = now + self.hold_ms if deadline_ms is None else deadline_ms
        try:
            # The run's own segment count is checked in Lua, saving a round trip here.
            check_hold_request(MAX_SEGMENTS, a, b, passengers, wish, deadline, now)
        except ValueError as exc:
            raise error_for(SeatCode.BAD_REQUEST, reason=str(exc)) from None
        hold_id = self.keys.hold_id(run_id, account_id, idempotency_key)
        u = self.unit(run_id, seat_class)
        hold_key = self.keys.keys.hold(u.shard, hold_id)
        reply = await self._call(
            self._hold,
            [*u.inventory, hold_key, u.deadlines, u.outbox, u.epoch],
            [
                now,
                hold_id,
                account_id,
                a,
                b,
                wish,
                deadline,
                hold_fingerprint(run_id, seat_class, a, b, passengers, wish, change_of),
                change_of,
                run_id,
                seat_class,
                *passengers,
            ],
        )
        code = int(reply[0])
        if code < 0:
            raise _refusal(reply, "passenger")
        return SeatHold(
            hold_id=as_text(reply[1]),
            run_id=run_id,
            seat_class=seat_class,
            seats=tuple(ref_from_tail(as_text(t)) for t in reply[4:]),
            segments=(a, b),
            deadline_ms=int(reply[2]),
            wish_met=as_text(reply[3]) == "1",
            replayed=code == SeatCode.REPLAY,
        )

    # confirm ------------------------------------------------------------------------------
    async def confirm(
        self,
        account_id: str,
        hold_id: str,
        *,
        now_ms: int | None = None,
        change_commit_of: str = "",
    ) -> Outcome:
        """Held -> confirmed while the hold is live; confirming again answers the same."""
        shard = self.keys.hold_shard(hold_id)
        reply = await self.guarded(
            self._confirm,
            [
                self.keys.hold(hold_id),
                self.keys.keys.hold_deadlines(shard),
                self.keys.keys.outbox(shard),
            ],
            [self._now(now_ms), hold_id, account_id, change_commit_of],
            shard,
        )
        return self._outcome(hold_id, reply)

    # release paths ------------------------------------------------------------------------
    async def cancel(
        self,
        account_id: str,
        hold_id: str,
        *,
        now_ms: int | None = None,
        change_aborted: bool = False,
        where: tuple[str, str] | None = None,
    ) -> Outcome:
        """Held or confirmed -> cancelled, its seats back on sale; again: nothing to do.
        ``where`` = (run_id, seat_class) of the hold, when known, saves a read (Lua checks it)."""
        return await self._release_call(
            hold_id, "cancel", account_id, "1" if change_aborted else "", now_ms, where
        )

    async def release_one(
        self,
        account_id: str,
        hold_id: str,
        place: int,
        *,
        now_ms: int | None = None,
        where: tuple[str, str] | None = None,
    ) -> Outcome:
        """Return the seat of the ``place``-th passenger (from 1) of a confirmed party, the
        others keep theirs (a per-ticket refund). Again: REPLAY. Never the party's last live
        seat (cancel the hold for that). No outbox event: the caller records the ticket."""
        return await self._release_call(
            hold_id, "release_one", account_id, str(place), now_ms, where
        )

    async def gone(self, hold_id: str) -> dict[int, int]:
        """The places (from 1) of a hold whose seats went back one by one -> when (ms)."""
        raw = await self._hold_record(hold_id)
        places = [int(p) for p in raw.get("gone", "").split(",") if p]
        return {p: int(raw.get(f"gone_at:{p}", "0")) for p in places}

    async def expire_raw(
        self, hold_id: str, *, now_ms: int | None = None, change_aborted: bool = False
    ) -> Outcome:
        """The ``expire`` mode of seat_release as is; a sweeper calls :meth:`expire`."""
        return await self._release_call(
            hold_id, "expire", "", "1" if change_aborted else "", now_ms
        )

    async def decide_change(
        self,
        old_hold_id: str,
        new_hold_id: str,
        *,
        commit: bool,
        account_id: str = "",
        now_ms: int | None = None,
    ) -> Outcome:
        """Commit or abort a 改签 at its old ticket; the first decision stands."""
        mode = "change" if commit else "abort_change"
        return await self._release_call(old_hold_id, mode, account_id, new_hold_id, now_ms)

    async def expire(self, hold_id: str, *, now_ms: int | None = None) -> Outcome:
        """What the sweeper calls for a hold past its deadline. A pending 改签 hold is decided
        at its old ticket first: confirmed if the change committed there, else aborted there
        and then expired, so a late commit can no longer succeed."""
        now = self._now(now_ms)
        raw = await self._hold_record(hold_id)
        if not raw:  # its record is gone: drop the deadline it left behind
            shard = self.keys.hold_shard(hold_id)
            # Not while sales are closed: a rebuild may be restoring this very hold.
            if await self._epoch_valid(shard):
                await self.client.zrem(self.keys.keys.hold_deadlines(shard), hold_id)
        info = self._hold_info(hold_id, raw)
        if info is None:
            raise error_for(SeatCode.HOLD_NOT_FOUND)
        if info.state == "held" and now < info.deadline_ms:
            raise error_for(SeatCode.NOT_DUE)
        aborted = False
        if info.state == "held" and info.change_of:
            try:
                decision = await self.decide_change(
                    info.change_of, hold_id, commit=False, now_ms=now
                )
            except NotOwner:  # the old ticket is gone: it can never commit
                decision = Outcome(info.change_of, "aborted", False)
            if decision.state == "changed":
                return await self.confirm(
                    info.account_id, hold_id, now_ms=now, change_commit_of=info.change_of
                )
            aborted = True
        return await self.expire_raw(hold_id, now_ms=now, change_aborted=aborted)

    async def expire_due(
        self, shard: int, *, now_ms: int | None = None, limit: int = 100
    ) -> list[Outcome]:
        """Expire up to ``limit`` seat holds of a shard whose deadline has passed."""
        now = self._now(now_ms)
        due = await self.client.zrangebyscore(
            self.keys.keys.hold_deadlines(shard), "-inf", now, start=0, num=limit
        )
        outcomes = []
        for raw in due:
            hold_id = as_text(raw)
            try:
                key = self.keys.hold(hold_id)
            except ValueError:
                continue  # a slot hold (``h<shard>-…``) shares the shard's deadline index
            fixed = await self.client.hget(key, hold_record.FIELD)
            if fixed is not None and hold_record.unpack(as_text(fixed))["kind"] != "seat":
                continue  # another inventory's hold shares the shard index
            try:
                outcomes.append(await self.expire(hold_id, now_ms=now))
            except SalesClosed:
                break  # nothing expires while the inventory waits for a rebuild
            except InventoryError:
                continue  # raced with a confirm or cancel, or already gone
        return outcomes

    async def change(
        self,
        account_id: str,
        old_hold_id: str,
        new_run_id: str,
        new_class: str,
        a: int,
        b: int,
        *,
        idempotency_key: str,
        wish: str = "",
        deadline_ms: int | None = None,
        now_ms: int | None = None,
    ) -> SeatHold:
        """改签: move a confirmed ticket to another run of the route (see the module doc).
        Safe to retry with the same ``idempotency_key`` after any failure."""
        now = self._now(now_ms)
        old = await self.get_hold(old_hold_id)
        if old is None or old.account_id != account_id:
            raise error_for(SeatCode.HOLD_NOT_FOUND)
        if old.run_id == new_run_id:
            raise error_for(SeatCode.BAD_REQUEST, reason="a change goes to another run")
        if old.state not in ("confirmed", "changed"):
            raise error_for(SeatCode.HOLD_NOT_LIVE, state=old.state)
        gone = await self.gone(old_hold_id)  # refunded one by one: they do not move
        new = await self.hold(
            account_id,
            new_run_id,
            new_class,
            a,
            b,
            [p for i, p in enumerate(old.passengers, 1) if i not in gone],
            idempotency_key=idempotency_key,
            wish=wish,
            deadline_ms=deadline_ms,
            now_ms=now,
            change_of=old_hold_id,
        )
        try:
            await self.decide_change(
                old_hold_id, new.hold_id, commit=True, account_id=account_id, now_ms=now
            )
        except (ChangeAborted, HoldNotLive, NotOwner):
            # The old ticket can never commit to this hold now: give the new seat back.
            await self.cancel(account_id, new.hold_id, now_ms=now, change_aborted=True)
            raise
        await self.confirm(account_id, new.hold_id, now_ms=now, change_commit_of=old_hold_id)
        return replace(new, state="confirmed")

    # reads --------------------------------------------------------------------------------
    async def remaining(self, run_id: str, seat_class: str) -> Remaining:
        """余票 for every trip of a run and class: one HGETALL of the seats per pattern (the
        buckets present), summed here rather than in Lua so the query flood costs Redis a
        plain read (replica-friendly) and the arithmetic scales with the service processes:
        seats per free gap (a pattern's gaps are parsed once per process), then an
        O(nseg²) suffix sum. The holds keep no per-gap counts for it (see ``seat_keys``)."""
        u = self.unit(run_id, seat_class)
        nseg = self._nseg.get((run_id, seat_class))
        if nseg is None:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hget(u.meta, "nseg")
                pipe.hgetall(u.pcount)
                raw_nseg, counts = await pipe.execute()
            if raw_nseg is None:
                raise error_for(SeatCode.NOT_LOADED)
            nseg = self._nseg[(run_id, seat_class)] = int(raw_nseg)
        else:
            counts = await self.client.hgetall(u.pcount)
        return remaining_from_patterns(nseg, _counts(counts))

    async def get_hold(self, hold_id: str) -> HoldInfo | None:
        return self._hold_info(hold_id, await self._hold_record(hold_id))

    async def _hold_record(self, hold_id: str) -> dict[str, str]:
        # Read on every pay, cancel and retry: over the pipelining client, like the scripts.
        raw = await self.calls.command("HGETALL", self.keys.hold(hold_id))
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        return hold_record.record_fields({as_text(k): as_text(v) for k, v in pairs})

    @staticmethod
    def _hold_info(hold_id: str, h: dict[str, str]) -> HoldInfo | None:
        if h.get("kind") != "seat":
            return None
        return HoldInfo(
            hold_id=hold_id,
            account_id=h["acct"],
            run_id=h["run"],
            seat_class=h["cls"],
            segments=(int(h["a"]), int(h["b"])),
            seats=tuple(ref_from_tail(t) for t in h["seats"].split(";")),
            passengers=tuple(h["pax"].split(",")),
            state=h["state"],
            deadline_ms=int(h["deadline"]),
            change_of=h.get("change_of", ""),
            changed_to=h.get("changed_to", ""),
        )

    async def occupancy(self, run_id: str, seat_class: str) -> dict[SeatRef, str]:
        """Every seat's pattern ('1' = sold segment), for checks and reconciliation."""
        raw = await self.client.hgetall(self.unit(run_id, seat_class).seats)
        out: dict[SeatRef, str] = {}
        for record in raw.values():
            pattern, _, tail = as_text(record).partition("|")
            out[ref_from_tail(tail)] = pattern
        return out

    async def audit(self, run_id: str, seat_class: str) -> list[str]:
        """Recompute every derived structure of a unit from the seats' patterns and list the
        disagreements; [] when consistent. O(seats): for tests and operators, not requests."""
        u = self.unit(run_id, seat_class)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(u.meta, "nseg")
            pipe.hgetall(u.seats)
            pipe.zrange(u.bypat, 0, -1)
            pipe.hgetall(u.pcount)
            pipe.zrange(u.gapidx, 0, -1)
            pipe.get(u.gaps)
            raw_nseg, seats, bypat, pcount, gapidx, gaps = await pipe.execute()
        if raw_nseg is None:
            return ["not published"]
        nseg = int(raw_nseg)
        records = sorted(as_text(v) for v in seats.values())
        want = unit_state(nseg, records)
        got_cells = gaps.encode("latin-1") if isinstance(gaps, str) else bytes(gaps or b"")
        checks = {
            "bypat": (sorted(as_text(m) for m in bypat), records),
            "pcount": (_counts(pcount), want.pcount),
            "gapidx": ({as_text(m) for m in gapidx}, want.gapidx),
            "gaps": (got_cells, want.gaps),
        }
        return [name for name, (got, want) in checks.items() if got != want]

    # rebuild (issue 4) -----------------------------------------------------------------------
    async def restore_unit(
        self, run_id: str, seat_class: str, nseg: int, records: Sequence[str], marker: str
    ) -> None:
        """Rewrite a (run, class) map from Postgres: ``records`` are every seat's
        ``"<pattern>|<tail>"`` in ordinal order. Only while the shard's marker is ``marker``
        (raises ``SalesClosed`` otherwise). One call, like ``publish``."""
        tails = [r[nseg + 1 :] for r in records]
        state = unit_state(nseg, records)
        u = self.unit(run_id, seat_class)
        args: list[Any] = [marker, nseg, map_fingerprint(nseg, seat_class, tails), run_id]
        args += [seat_class, state.gaps.decode("latin-1")]
        # pcount gets the field that keeps it a hashtable, as at publish.
        args += [len(state.pcount) + 1, len(state.gapidx)]
        for pattern, count in sorted(state.pcount.items()):
            args += [pattern, count]
        args += [HASHTABLE_FIELD, HASHTABLE_VALUE]
        args += sorted(state.gapidx)
        args += list(records)
        reply = await self.calls.call(self._restore, [*u.inventory[:6], u.epoch], args)
        if int(reply[0]) < 0:
            raise _refusal(reply)
        self._nseg.pop((run_id, seat_class), None)

    async def restore_holds(
        self,
        run_id: str,
        holds: Sequence[RestoredSeatHold],
        marker: str,
        *,
        chunk: int = 32,
    ) -> None:
        """Rewrite a run's hold records, its passenger index and their deadlines from
        Postgres (``seat_restore_holds``), ``chunk`` holds per call so none blocks Redis long.
        A run without holds still gets its (then empty) passenger index reset."""
        u = self.unit(run_id, "")
        for start in range(0, max(1, len(holds)), chunk):
            part = holds[start : start + chunk]
            keys = [u.pax, u.deadlines, self.keys.keys.epoch(u.shard)]
            keys += [self.keys.hold(h.hold_id) for h in part]
            args: list[Any] = [marker, "1" if start == 0 else "0", len(part)]
            for h in part:
                record = h.record()
                args += [len(record), h.expire_at_ms or "", h.indexed_deadline or ""]
                args += [",".join(h.live_passengers)]
                for name, value in record.items():
                    args += [name, value]
            reply = await self.calls.call(self._restore_holds, keys, args)
            if int(reply[0]) < 0:
                raise _refusal(reply)

    # internals ----------------------------------------------------------------------------
    def _now(self, now_ms: int | None) -> int:
        return self.clock() if now_ms is None else now_ms

    @staticmethod
    def _outcome(hold_id: str, reply: list[Any]) -> Outcome:
        code = int(reply[0])
        if code < 0:
            raise _refusal(reply, "state")
        return Outcome(hold_id, as_text(reply[1]), code == SeatCode.OK)

    async def _release_call(
        self,
        hold_id: str,
        mode: str,
        account_id: str,
        extra: str,
        now_ms: int | None,
        where: tuple[str, str] | None = None,
    ) -> Outcome:
        hold_key = self.keys.hold(hold_id)
        if where is None:
            fixed = await self.client.hget(hold_key, hold_record.FIELD)
            if fixed is None:
                raise error_for(SeatCode.HOLD_NOT_FOUND)
            found = hold_record.unpack(as_text(fixed))
            where = (found["run"], found["cls"])
        if self.freeing is not None and mode != "abort_change":
            # Waitlist first, handoff defence (issue 5): freed seats go to cooling.
            return await self.freeing.free_seat(
                self,
                hold_id=hold_id,
                mode=mode,
                account_id=account_id,
                extra=extra,
                now_ms=self._now(now_ms),
                where=where,
            )
        u = self.unit(*where)
        reply = await self._call(
            self._release,
            [*u.inventory, hold_key, u.deadlines, u.outbox, u.epoch],
            [self._now(now_ms), hold_id, mode, account_id, self.keep_ms, extra, *where],
        )
        return self._outcome(hold_id, reply)
