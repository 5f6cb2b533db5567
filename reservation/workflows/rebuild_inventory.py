"""Rebuild the live inventory in Redis from Postgres, compare the two, and keep sales
closed while Redis may have lost data (issue 4; see docs/durability.md).

Always:
- Postgres keeps the inventory's epoch (``inventory_epochs``) and whether sales are open;
  every shard's marker in Redis must hold that epoch, and every writing script checks it
  in its own atomic call (``inventory.epoch``). A missing or different marker is 503
  ``sales_closed``.
- A Redis node that restarted (its ``run_id`` is not one the last rebuild saw) closes
  sales: it may have come back without its last second of writes, or from an older copy.
- Only a rebuild opens sales. It closes them under a new epoch, first drains every outbox
  into Postgres (so nothing that survived in Redis is lost), then rewrites slots, holds,
  the person-day index, deadlines and account caps from Postgres, then opens.

Extension point: the rebuild and the reconciliation run every ``InventoryPart`` in
``PARTS``; slots are one, train seats (``rebuild_seats.SeatPart``) the other, added by
``all_parts``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster

from inventory.epoch import LOST, NEVER_BUILT, REBUILDING, EpochGuard, EpochState
from inventory.errors import SalesClosed
from inventory.slot_engine import RestoredHold, RestoredSlot, shard_from_id
from reservation.domain.clock import from_ms, iso, to_ms
from reservation.services import Services
from reservation.store import inventory_state as store
from reservation.store import vaccine as vaccine_store
from reservation.workers.persister import Persister
from reservation.workflows.publish_slots import RETAIN_AFTER_END

log = logging.getLogger("fairseat.rebuild")

LIVE_STATES = ("held", "confirmed")


# Results ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Difference:
    """One way Redis and Postgres disagree."""

    kind: str  # marker, sales_closed, missing_slot, slot_field, stock, missing_hold, ...
    subject: str  # what it is about: a shard, slot id, hold id, account...
    redis: str  # what Redis holds
    postgres: str  # what Postgres says it should hold

    def describe(self) -> str:
        return f"{self.kind} {self.subject}: Redis has {self.redis}, Postgres says {self.postgres}"

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "redis": self.redis,
            "postgres": self.postgres,
            "description": self.describe(),
        }


def index_differences(
    kind: str, subject: str, live: dict[str, str], want: dict[str, str], *, of: str = "person"
) -> list[Difference]:
    """Where a person (or department...) -> hold id index in Redis (``live``) is not what
    Postgres says."""
    return [
        Difference(
            kind,
            # A person is an ID HMAC: its first 12 hex digits name it well enough.
            f"{subject} {of} {name[:12] if of == 'person' else name}",
            live.get(name, "nothing"),
            want.get(name, "nothing"),
        )
        for name in sorted(set(want) | set(live))
        if want.get(name) != live.get(name)
    ]


@dataclass
class RebuildReport:
    epoch: int = 0
    drained_events: int = 0
    expired_overdue: int = 0  # held in Postgres with a passed deadline: expired now
    slots: int = 0
    live_holds: int = 0
    confirmed: int = 0
    ended: int = 0
    removed_holds: int = 0  # in Redis but unknown to Postgres (lost with the data)
    account_caps: int = 0
    day_gates: int = 0  # hospital: patients' day gates rewritten (rebuild_hospital)
    oversold_slots: list[str] = field(default_factory=list)  # must stay empty
    # Train seats (rebuild_seats): seat maps, seat holds by state, dropped Redis-only holds.
    seat_units: int = 0
    seat_holds_live: int = 0
    seat_confirmed: int = 0
    seat_ended: int = 0
    removed_seat_holds: int = 0
    oversold_seats: list[str] = field(default_factory=list)  # must stay empty
    seconds: float = 0.0
    attempts: int = 1  # more than 1: the markers were overwritten meanwhile (rebuild_inventory)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "drained_events": self.drained_events,
            "expired_overdue": self.expired_overdue,
            "slots": self.slots,
            "live_holds": self.live_holds,
            "confirmed": self.confirmed,
            "ended": self.ended,
            "removed_holds": self.removed_holds,
            "account_caps": self.account_caps,
            "oversold_slots": self.oversold_slots,
            "seat_units": self.seat_units,
            "seat_holds_live": self.seat_holds_live,
            "seat_confirmed": self.seat_confirmed,
            "seat_ended": self.seat_ended,
            "removed_seat_holds": self.removed_seat_holds,
            "oversold_seats": self.oversold_seats,
            "seconds": round(self.seconds, 3),
            "attempts": self.attempts,
        }


# Extension point ---------------------------------------------------------------------------
@dataclass
class Snapshot:
    """What Postgres says, read once per rebuild or reconciliation (after the drain)."""

    now_ms: int
    slots: list[dict[str, Any]]
    bookings: list[dict[str, Any]]


class InventoryPart(Protocol):
    """One kind of live inventory (slots; train seats later)."""

    name: str

    async def read(self, services: Services, now_ms: int) -> Snapshot: ...

    async def restore(
        self, services: Services, snapshot: Snapshot, marker: str, report: RebuildReport
    ) -> None: ...

    def live_account_holds(self, snapshot: Snapshot) -> dict[str, dict[str, int]]:
        """account id -> hold id -> deadline ms of its live unpaid holds (the cap)."""
        ...

    async def compare(self, services: Services, snapshot: Snapshot) -> list[Difference]: ...


# Redis helpers -----------------------------------------------------------------------------
async def redis_run_ids(client: Any) -> list[str]:
    """The run_id of every Redis node (primaries on a cluster): new after any restart."""
    if isinstance(client, RedisCluster):
        ids = []
        for node in client.get_primaries():
            info = await client.info("server", target_nodes=node)
            if "run_id" not in info:  # some versions wrap one node's answer by name
                info = next(iter(info.values()))
            ids.append(str(info["run_id"]))
        return sorted(ids)
    return [str((await client.info("server"))["run_id"])]


async def read_markers(services: Services) -> list[str | None]:
    keys = services.keys
    async with services.redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.shard_count):
            pipe.get(keys.epoch(shard))
        values: list[str | None] = await pipe.execute()
    return values


async def _write_markers(services: Services, value: str) -> None:
    keys = services.keys
    async with services.redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.shard_count):
            pipe.set(keys.epoch(shard), value)
        await pipe.execute()


async def _scan(services: Services, kind: str) -> list[str]:
    """Every key ``<prefix>:{sNNN}:<kind>:*`` (all nodes of a cluster)."""
    pattern = f"{services.keys.prefix}:{{s*}}:{kind}:*"
    return [key async for key in services.redis.scan_iter(match=pattern, count=1000)]


async def _hgetall_many(services: Services, keys: list[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for start in range(0, len(keys), 1000):
        async with services.redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + 1000]:
                pipe.hgetall(key)
            out.extend(await pipe.execute())
    return out


def _id_after(key: str, kind: str) -> str:
    return key.split(f":{kind}:", 1)[1]


# The epoch ---------------------------------------------------------------------------------
async def load_epoch_state(services: Services) -> EpochState:
    """The epoch from Postgres; closes sales first if a Redis node restarted since the
    last rebuild (watch_redis_restarts)."""
    prefix = services.keys.prefix
    async with services.pool.acquire() as conn:
        row = await store.get_epoch(conn, prefix)
    if row is None:
        return NEVER_BUILT
    state = EpochState(int(row["epoch"]), bool(row["open"]), str(row["reason"]))
    if not (state.open and services.settings.watch_redis_restarts):
        return state
    known = set(row["redis_run_ids"])
    unknown = [run_id for run_id in await redis_run_ids(services.redis) if run_id not in known]
    if not unknown:
        return state
    reason = f"a Redis node restarted since the last rebuild (run_id {unknown[0]})"
    await close_sales(services, state.epoch, reason)
    return EpochState(state.epoch, False, reason)


async def close_sales(services: Services, epoch: int, reason: str) -> bool:
    """Close sales of ``epoch`` in Postgres and in every shard's marker at once."""
    async with services.pool.acquire() as conn:
        closed = await store.close_sales(conn, services.keys.prefix, epoch, reason)
    if closed:
        # Only the closer writes markers: a rebuild that started meanwhile owns them.
        await _write_markers(services, LOST)
        log.error("sales closed: %s; run `fairseat inventory rebuild`", reason)
    return closed


def install_epoch_guard(services: Services) -> EpochGuard:
    """Make the slot and seat engines check the epoch on every write (the service and its workers;
    tests and tools without it run unguarded)."""
    guard = EpochGuard(
        lambda: load_epoch_state(services), refresh_s=services.settings.epoch_refresh_ms / 1000
    )
    services.slots.guard = guard
    services.seats.guard = guard  # the same guard: one epoch for slots and seats
    return guard


def _tell_guard(services: Services, state: EpochState) -> None:
    if services.slots.guard is not None:
        services.slots.guard.set(state)


async def sales_open(services: Services) -> bool:
    """Postgres says open, and every shard's marker carries its epoch."""
    async with services.pool.acquire() as conn:
        row = await store.get_epoch(conn, services.keys.prefix)
    if row is None or not row["open"]:
        return False
    expected = str(row["epoch"])
    return all(marker == expected for marker in await read_markers(services))


async def inventory_status(services: Services) -> dict[str, Any]:
    async with services.pool.acquire() as conn:
        row = await store.get_epoch(conn, services.keys.prefix)
    markers = await read_markers(services)
    expected = str(row["epoch"]) if row is not None else None
    others: dict[str, int] = defaultdict(int)
    for marker in markers:
        if marker != expected:
            others[marker or "(missing)"] += 1
    run_ids = await redis_run_ids(services.redis)
    known = set(row["redis_run_ids"]) if row is not None else set()
    return {
        "key_prefix": services.keys.prefix,
        "epoch": row["epoch"] if row is not None else None,
        "open_in_postgres": bool(row["open"]) if row is not None else False,
        "reason": row["reason"] if row is not None else "never built",
        "rebuilt_at": iso(row["rebuilt_at"]) if row else None,
        "shards": len(markers),
        "shards_matching": len(markers) - sum(others.values()),
        "other_markers": dict(others),
        "redis_nodes_known": all(r in known for r in run_ids),
        "sales_open": bool(row and row["open"]) and not others,
    }


# Draining the outbox -----------------------------------------------------------------------
async def drain_outbox(services: Services, *, max_passes: int = 200) -> int:
    """Write every outbox entry still in Redis to Postgres (pending ones of any consumer
    included): events that survived a loss are kept, and replays are no-ops."""
    persister = Persister(
        services,
        consumer="rebuild",
        shards=list(range(services.keys.shard_count)),
        batch_size=services.settings.persister_batch_size,
        dead_letter_after=services.settings.persister_dead_letter_after,
        claim_idle_ms=0,  # take over entries pending anywhere: writing twice is harmless
        fenced=False,  # the rebuild's own drain runs after the bump: it is what fences
    )
    written = 0
    quiet = 0
    for _ in range(max_passes):
        result = await persister.run_once()
        written += result.written
        busy = result.written or result.dead_lettered or result.retry_later
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            break
    return written


# Slots ---------------------------------------------------------------------------------
def _ms(value: dt.datetime | None) -> int | None:
    return to_ms(value) if value is not None else None


def _retain_ms(slot: dict[str, Any]) -> int:
    return to_ms(slot["ends_at"] + RETAIN_AFTER_END)


class SlotPart:
    name = "slots"

    async def read(self, services: Services, now_ms: int) -> Snapshot:
        async with services.pool.acquire() as conn:
            slots = await store.retained_slots(conn, from_ms(now_ms) - RETAIN_AFTER_END)
            bookings = await store.bookings_of_slots(conn, [s["id"] for s in slots])
            # --- vaccine (issue 6): a series' holds get their marker back, so the generic
            # confirm and cancel keep refusing them one dose at a time after a rebuild.
            series = await vaccine_store.series_of_holds(conn, [b["id"] for b in bookings])
            for b in bookings:
                b["series"] = series.get(b["id"])
        return Snapshot(now_ms, slots, bookings)

    @staticmethod
    def _by_slot(snapshot: Snapshot) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for b in snapshot.bookings:
            out[b["slot_id"]].append(b)
        return out

    def live_account_holds(self, snapshot: Snapshot) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for b in snapshot.bookings:
            if b["state"] == "held" and to_ms(b["deadline"]) > snapshot.now_ms:
                out[b["account_id"]][b["id"]] = to_ms(b["deadline"])
        return out

    async def restore(
        self, services: Services, snapshot: Snapshot, marker: str, report: RebuildReport
    ) -> None:
        # Holds in Redis that Postgres never heard of went with the data: drop them.
        known = {b["id"] for b in snapshot.bookings}
        hold_keys = await _scan(services, "hold")
        found = await _hgetall_many(services, hold_keys)
        for key, h in zip(hold_keys, found, strict=True):
            hold_id = _id_after(key, "hold")
            if "slot" not in h or "kind" in h or hold_id in known:
                continue  # not a slot hold (seats own theirs), or restored below
            shard = shard_from_id(hold_id)
            async with services.redis.pipeline(transaction=False) as pipe:
                pipe.delete(key)  # not unlink: async in a cluster pipeline
                pipe.zrem(services.keys.hold_deadlines(shard), hold_id)
                await pipe.execute()
            report.removed_holds += 1
        # Slots in Redis that Postgres does not keep (cannot happen: publication writes
        # Postgres first) would be left to their expiry; reconcile reports them.
        by_slot = self._by_slot(snapshot)
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for slot in snapshot.slots:
            groups[(slot["resource_id"], slot["day"].isoformat())].append(slot)
        for (resource_id, day), slots in groups.items():
            restored_slots: list[RestoredSlot] = []
            holds: list[RestoredHold] = []
            for slot in slots:
                bookings = by_slot.get(slot["id"], [])
                taken = sum(1 for b in bookings if b["state"] in LIVE_STATES)
                if taken > slot["capacity"]:
                    report.oversold_slots.append(slot["id"])
                restored_slots.append(
                    RestoredSlot(
                        slot_id=slot["id"],
                        capacity=slot["capacity"],
                        available=max(0, slot["capacity"] - taken),
                        release_ms=to_ms(slot["release_at"]),
                        ends_ms=to_ms(slot["ends_at"]),
                        status=slot["status"],
                        retain_until_ms=_retain_ms(slot),
                    )
                )
                for b in bookings:
                    holds.append(
                        RestoredHold(
                            hold_id=b["id"],
                            slot_id=b["slot_id"],
                            account_id=b["account_id"],
                            person=b["person_hmac"],
                            state=b["state"],
                            held_ms=to_ms(b["held_at"]),
                            deadline_ms=to_ms(b["deadline"]),
                            confirmed_ms=_ms(b["confirmed_at"]),
                            ended_ms=_ms(b["ended_at"]),
                            idempotency_key=b["idempotency_key"],
                            retain_until_ms=_retain_ms(slot),
                            series=b.get("series"),
                        )
                    )
                    if b["state"] == "held":
                        report.live_holds += 1
                    elif b["state"] == "confirmed":
                        report.confirmed += 1
                    else:
                        report.ended += 1
            await services.slots.restore_group(
                shard=shard_from_id(slots[0]["id"]),
                resource_id=resource_id,
                day=day,
                marker=marker,
                slots=restored_slots,
                holds=holds,
            )
            report.slots += len(restored_slots)

    async def compare(self, services: Services, snapshot: Snapshot) -> list[Difference]:
        keys = services.keys
        diffs: list[Difference] = []
        by_slot = self._by_slot(snapshot)
        slot_keys = [keys.slot(shard_from_id(s["id"]), s["id"]) for s in snapshot.slots]
        for slot, live in zip(
            snapshot.slots, await _hgetall_many(services, slot_keys), strict=True
        ):
            sid = slot["id"]
            if not live:
                diffs.append(Difference("missing_slot", sid, "nothing", "a published slot"))
                continue
            taken = sum(1 for b in by_slot.get(sid, []) if b["state"] in LIVE_STATES)
            expect = {
                "capacity": str(slot["capacity"]),
                "status": slot["status"],
                "release": str(to_ms(slot["release_at"])),
                "ends": str(to_ms(slot["ends_at"])),
                "resource": slot["resource_id"],
                "day": slot["day"].isoformat(),
            }
            for name, value in expect.items():
                if live.get(name) != value:
                    diffs.append(
                        Difference("slot_field", f"{sid}.{name}", live.get(name, "-"), value)
                    )
            available = slot["capacity"] - taken
            # Places in cooling (issue 5, docs/waitlist.md) are free in Postgres' eyes:
            # held by the system for the waitlist, then back on sale.
            cooling = int(live.get("cooling") or 0)
            on_sale = live.get("available")
            if on_sale is None or int(on_sale) + cooling != available:
                diffs.append(
                    Difference(
                        "stock",
                        sid,
                        f"available={live.get('available')}",
                        f"available={available} (capacity {slot['capacity']} - {taken} held or"
                        " confirmed)",
                    )
                )
        # Holds: every booking of a kept slot, and no slot hold Postgres does not know.
        pg = {b["id"]: b for b in snapshot.bookings}
        hold_keys = await _scan(services, "hold")
        redis_holds = {
            _id_after(k, "hold"): h
            for k, h in zip(hold_keys, await _hgetall_many(services, hold_keys), strict=True)
            if "slot" in h and "kind" not in h
        }
        for hold_id, extra in redis_holds.items():
            if hold_id not in pg:
                diffs.append(
                    Difference("extra_hold", hold_id, f"state={extra.get('state')}", "no booking")
                )
        deadline_checks: list[tuple[str, dict[str, Any]]] = []
        for hold_id, b in pg.items():
            h = redis_holds.get(hold_id)
            if h is None:
                diffs.append(Difference("missing_hold", hold_id, "nothing", f"state={b['state']}"))
                continue
            if h.get("state") != b["state"]:
                diffs.append(
                    Difference("hold_state", hold_id, f"state={h.get('state')}", b["state"])
                )
            expect = {
                "slot": b["slot_id"],
                "account": b["account_id"],
                "person": b["person_hmac"],
                "deadline": str(to_ms(b["deadline"])),
            }
            for name, value in expect.items():
                if h.get(name) != value:
                    diffs.append(
                        Difference("hold_field", f"{hold_id}.{name}", h.get(name, "-"), value)
                    )
            deadline_checks.append((hold_id, b))
        # The deadline index: exactly the held holds, at their deadline.
        async with services.redis.pipeline(transaction=False) as pipe:
            for hold_id, _b in deadline_checks:
                pipe.zscore(keys.hold_deadlines(shard_from_id(hold_id)), hold_id)
            scores = await pipe.execute()
        for (hold_id, b), score in zip(deadline_checks, scores, strict=True):
            want = to_ms(b["deadline"]) if b["state"] == "held" else None
            got = int(score) if score is not None else None
            if got != want:
                diffs.append(Difference("deadline_index", hold_id, str(got), str(want)))
        diffs += await self._compare_person_day(services, snapshot)
        return diffs

    async def _compare_person_day(self, services: Services, snapshot: Snapshot) -> list[Difference]:
        keys = services.keys
        slots = {s["id"]: s for s in snapshot.slots}
        expected: dict[str, dict[str, str]] = defaultdict(dict)
        for slot in snapshot.slots:
            key = keys.person_day(
                shard_from_id(slot["id"]), slot["resource_id"], slot["day"].isoformat()
            )
            expected.setdefault(key, {})
        for b in snapshot.bookings:
            if b["state"] in LIVE_STATES:
                slot = slots[b["slot_id"]]
                key = keys.person_day(
                    shard_from_id(slot["id"]), slot["resource_id"], slot["day"].isoformat()
                )
                expected[key][b["person_hmac"]] = b["id"]
        names = list(expected)
        diffs: list[Difference] = []
        for key, live in zip(names, await _hgetall_many(services, names), strict=True):
            diffs += index_differences("person_day", key, live, expected[key])
        return diffs


PARTS: list[InventoryPart] = [SlotPart()]


def register_part(part: InventoryPart) -> None:
    """Train seats (or any other live inventory) join the rebuild and reconciliation."""
    if all(p.name != part.name for p in PARTS):
        PARTS.append(part)


def all_parts() -> list[InventoryPart]:
    """Every part, train seats included (imported here: they build on this module)."""
    from reservation.workflows.rebuild_hospital import DayGatePart
    from reservation.workflows.rebuild_seats import SeatPart

    register_part(SeatPart())
    register_part(DayGatePart())
    return PARTS


# Account caps ------------------------------------------------------------------------------
def _merge_caps(parts: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    merged: dict[str, dict[str, int]] = defaultdict(dict)
    for caps in parts:
        for account, holds in caps.items():
            merged[account].update(holds)
    return merged


async def _restore_account_caps(services: Services, caps: dict[str, dict[str, int]]) -> int:
    stale = await _scan(services, "acctholds")
    async with services.redis.pipeline(transaction=False) as pipe:
        for key in stale:
            pipe.delete(key)  # not unlink: async in a cluster pipeline
        for account, holds in caps.items():
            key = services.keys.account_holds(account)
            pipe.zadd(key, {hold_id: deadline for hold_id, deadline in holds.items()})
            pipe.pexpireat(key, max(holds.values()))
        await pipe.execute()
    return len(caps)


async def _compare_account_caps(
    services: Services, caps: dict[str, dict[str, int]], now_ms: int
) -> list[Difference]:
    diffs: list[Difference] = []
    live: dict[str, dict[str, int]] = {}
    for key in await _scan(services, "acctholds"):
        entries = await services.redis.zrangebyscore(key, f"({now_ms}", "+inf", withscores=True)
        live[_id_after(key, "acctholds")] = {m: int(s) for m, s in entries}
    for account in sorted(set(caps) | set(live)):
        want, got = caps.get(account, {}), live.get(account, {})
        for hold_id in sorted(set(want) | set(got)):
            if want.get(hold_id) != got.get(hold_id):
                diffs.append(
                    Difference(
                        "account_cap",
                        f"account {account} hold {hold_id}",
                        "counted" if hold_id in got else "not counted",
                        "counted" if hold_id in want else "not counted",
                    )
                )
    return diffs


# The two commands --------------------------------------------------------------------------
async def rebuild_inventory(services: Services, *, attempts: int = 3) -> RebuildReport:
    """Close sales, drain the outboxes, rewrite the live inventory from Postgres, open.

    A process that closes sales (it saw a Redis restart, :func:`close_sales`) while this
    runs overwrites the shards' markers, and the next restoring script is refused with
    ``sales_closed``. That refusal is kept on purpose (Redis may just have lost what this
    rebuild wrote), and the whole rebuild starts again under a new epoch, up to
    ``attempts`` times, so the operator does not have to."""
    for attempt in range(1, attempts + 1):
        try:
            report = await _rebuild_once(services)
        except SalesClosed:
            if attempt == attempts:
                raise
            log.warning("rebuild %d of %d: the markers were overwritten; again", attempt, attempts)
        else:
            report.attempts = attempt
            return report
    raise AssertionError("unreachable")  # pragma: no cover


async def _rebuild_once(services: Services) -> RebuildReport:
    started = time.monotonic()
    prefix = services.keys.prefix
    report = RebuildReport()
    async with services.pool.acquire() as lock_conn:
        await store.lock_rebuild(lock_conn, prefix)
        try:
            async with services.pool.acquire() as conn:
                report.epoch = epoch = await store.begin_rebuild(conn, prefix)
            _tell_guard(services, EpochState(epoch, False, "rebuilding"))
            marker = f"{REBUILDING}:{epoch}"
            await _write_markers(services, marker)
            # From here no script writes: everything Redis still has is in its outboxes.
            report.drained_events = await drain_outbox(services)
            now_ms = services.clock()
            async with services.pool.acquire() as conn:
                expired = await store.expire_overdue_holds(conn, from_ms(now_ms), epoch)
            report.expired_overdue = len(expired)
            snapshots = [(part, await part.read(services, now_ms)) for part in all_parts()]
            for part, snapshot in snapshots:
                await part.restore(services, snapshot, marker, report)
            report.account_caps = await _restore_account_caps(
                services, _merge_caps(part.live_account_holds(s) for part, s in snapshots)
            )
            run_ids = await redis_run_ids(services.redis)
            await _write_markers(services, str(epoch))
            async with services.pool.acquire() as conn:
                opened = await store.finish_rebuild(conn, prefix, epoch, run_ids)
            if not opened:  # pragma: no cover - the advisory lock makes this impossible
                raise RuntimeError("another rebuild replaced this one; sales stay closed")
            _tell_guard(services, EpochState(epoch, True))
        finally:
            await store.unlock_rebuild(lock_conn, prefix)
    report.seconds = time.monotonic() - started
    if report.oversold_slots or report.oversold_seats:
        log.error(
            "oversold in Postgres: %s", ", ".join(report.oversold_slots + report.oversold_seats)
        )
    log.info("inventory rebuilt: %s", report.to_dict())
    return report


async def reconcile_inventory(services: Services, *, drain: bool = True) -> list[Difference]:
    """Every difference between Redis and Postgres (empty: they agree). Drains the
    outboxes first, so events the persister has not written yet are not reported."""
    if drain:
        await drain_outbox(services)
    now_ms = services.clock()
    diffs: list[Difference] = []
    async with services.pool.acquire() as conn:
        row = await store.get_epoch(conn, services.keys.prefix)
    expected = str(row["epoch"]) if row is not None else "(never built)"
    if row is None or not row["open"]:
        reason = row["reason"] if row is not None else "never built"
        diffs.append(Difference("sales_closed", "inventory", "-", f"closed: {reason}"))
    wrong: dict[str, list[int]] = defaultdict(list)
    for shard, marker in enumerate(await read_markers(services)):
        if marker != expected:
            wrong[marker or "(missing)"].append(shard)
    for marker, shards in wrong.items():
        subject = f"{len(shards)} shard(s) {shards[0]}..{shards[-1]}"
        diffs.append(Difference("marker", subject, f"marker {marker!r}", f"epoch {expected}"))
    snapshots = [(part, await part.read(services, now_ms)) for part in all_parts()]
    for part, snapshot in snapshots:
        diffs += await part.compare(services, snapshot)
    caps = _merge_caps(part.live_account_holds(s) for part, s in snapshots)
    diffs += await _compare_account_caps(services, caps, now_ms)
    return diffs


async def ensure_inventory_ready(services: Services) -> RebuildReport | None:
    """At start (``fairseat serve``, tests): build the live inventory if it never was (a
    brand-new Redis and Postgres), and rebuild it if sales are closed and
    ``rebuild_on_start`` allows it (e.g. the embedded Redis restarted with the service).
    Returns the report if it rebuilt."""
    state = await load_epoch_state(services)
    if state.open and await sales_open(services):
        _tell_guard(services, state)
        return None
    if state.epoch > 0 and not services.settings.rebuild_on_start:
        log.error("sales closed (%s); run `fairseat inventory rebuild`", state.reason)
        return None
    return await rebuild_inventory(services)
