"""The post-run invariant checker: exact counts after a load run, or a non-zero exit.

Run it once the load has stopped. It first waits until the persister has drained every
shard's outbox (no entry pending for the ``persister`` group and nothing undelivered), so
Postgres mirrors Redis; then each check returns findings, and one failing finding fails
the run. Checks are grouped by inventory kind in ``CHECKS``: slots (hospital, vaccine and
plain slots) and train seats. For seats, Postgres must never have two live tickets on one
seat-segment, and Redis must hold exactly what Postgres says: the seat part of the
operators' reconciliation (``reservation.workflows.rebuild_seats``) compares every seat
map, hold record and index, so the checker does not keep a second copy of those rules.

Always: the checker only reads; it never repairs anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inventory.keys import Keys
from inventory.slot_engine import shard_from_id
from reservation.settings import Settings, SettingsError

PERSISTER_GROUP = "persister"
# Slot keys expire two days after the slot ends (reservation.workflows.publish_slots).
RETAINED_AFTER_END = dt.timedelta(days=2)


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed expectation about one subject (a slot, a booking, a shard)."""

    check: str
    subject: str
    detail: str


@dataclass
class CheckResult:
    name: str
    checked: int = 0
    failures: list[Finding] = field(default_factory=list)

    def fail(self, subject: str, detail: str) -> None:
        self.failures.append(Finding(self.name, subject, detail))

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Report:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[Finding]:
        return [f for r in self.results for f in r.failures]

    def table(self, *, max_failures: int = 50) -> str:
        width = max([len(r.name) for r in self.results] + [5])
        lines = [f"{'check':<{width}}  {'checked':>9}  {'failed':>7}  result"]
        for r in self.results:
            lines.append(
                f"{r.name:<{width}}  {r.checked:>9,}  {len(r.failures):>7,}  "
                + ("ok" if r.ok else "FAIL")
            )
        failures = self.failures
        for f in failures[:max_failures]:
            lines.append(f"FAIL {f.check}: {f.subject}: {f.detail}")
        if len(failures) > max_failures:
            lines.append(f"... and {len(failures) - max_failures:,} more failures")
        lines.append("invariants: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


@dataclass
class Context:
    conn: Any  # an asyncpg connection
    redis: Any  # a redis.asyncio client (decode_responses=True), single node or cluster
    keys: Keys
    now: dt.datetime
    # The service's settings (URLs resolved): the seat reconciliation opens its services.
    settings: Settings
    # Only these slots (None: every slot in Postgres).
    slot_ids: Sequence[str] | None = None
    # Booking ids the load generator was told were confirmed (HTTP 200 on confirm).
    expected_confirmed: Collection[str] | None = None


Check = Callable[[Context], Awaitable[CheckResult]]


# --- the persister has drained ---------------------------------------------------------


async def outbox_backlog(redis: Any, keys: Keys, shard_count: int) -> dict[int, str]:
    """Shards whose outbox the persister has not finished, with what is left."""
    shards = list(range(shard_count))
    async with redis.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.xinfo_stream(keys.outbox(shard))
            pipe.xinfo_groups(keys.outbox(shard))
        replies = await pipe.execute(raise_on_error=False)
    left: dict[int, str] = {}
    for shard, stream, groups in zip(shards, replies[0::2], replies[1::2], strict=True):
        if isinstance(stream, Exception):
            if "no such key" in str(stream).lower():
                continue  # nothing was ever written in this shard
            raise stream
        if isinstance(groups, Exception):
            raise groups
        group = next((g for g in groups if g["name"] == PERSISTER_GROUP), None)
        if group is None:
            if int(stream["length"]):
                left[shard] = f"{stream['length']} entries, no persister group"
            continue
        pending = int(group["pending"])
        undelivered = group["last-delivered-id"] != stream["last-generated-id"]
        if pending or undelivered:
            left[shard] = f"{pending} pending" + (", undelivered entries" if undelivered else "")
    return left


async def wait_drained(
    redis: Any, keys: Keys, shard_count: int, *, timeout: float, poll: float = 0.2
) -> CheckResult:
    result = CheckResult("persister drained", checked=shard_count)
    deadline = time.monotonic() + timeout
    while True:
        left = await outbox_backlog(redis, keys, shard_count)
        if not left or time.monotonic() >= deadline:
            break
        await asyncio.sleep(poll)
    for shard, what in sorted(left.items()):
        result.fail(f"shard {shard}", f"not drained after {timeout:g} s: {what}")
    return result


# --- slots -----------------------------------------------------------------------------

_SLOT_COUNTS = """
SELECT s.id, s.capacity, s.ends_at, s.status,
       count(b.id) FILTER (WHERE b.state IN ('held', 'confirmed')) AS live,
       count(b.id) FILTER (WHERE b.state = 'confirmed') AS confirmed
FROM slots s LEFT JOIN bookings b ON b.slot_id = s.id
WHERE $1::text[] IS NULL OR s.id = ANY($1::text[])
GROUP BY s.id
ORDER BY s.id
"""


async def check_slot_counts(ctx: Context) -> list[CheckResult]:
    """Per slot: live (held + confirmed) bookings in Postgres <= capacity, and Redis
    ``available`` + ``cooling`` == capacity - live, with the same capacity on both sides.
    A cooling place (freed, held back for the waitlist for the handoff delay; see
    docs/waitlist.md) is nobody's booking and not on sale yet: a run that ends within that
    delay after a cancel has it there."""
    rows = await ctx.conn.fetch(
        _SLOT_COUNTS, list(ctx.slot_ids) if ctx.slot_ids is not None else None
    )
    sold = CheckResult("slot sold <= capacity (postgres)", checked=len(rows))
    live = CheckResult("slot redis available + cooling == capacity - live", checked=0)
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for r in rows:
            pipe.hmget(
                ctx.keys.slot(shard_from_id(r["id"]), r["id"]), ["capacity", "available", "cooling"]
            )
        replies = await pipe.execute()
    for r, (capacity, available, cooling) in zip(rows, replies, strict=True):
        slot, cap, n_live = r["id"], int(r["capacity"]), int(r["live"])
        if n_live > cap:
            sold.fail(f"slot {slot}", f"{n_live} live bookings > capacity {cap}")
        if available is None:
            # Gone from Redis: normal once the slot's keys expired, a fault before that.
            if r["status"] == "open" and r["ends_at"] + RETAINED_AFTER_END > ctx.now:
                live.checked += 1
                live.fail(f"slot {slot}", "published but not in the live inventory")
            continue
        live.checked += 1
        if int(capacity) != cap:
            live.fail(f"slot {slot}", f"redis capacity {capacity} != postgres capacity {cap}")
        elif int(available) + int(cooling or 0) != cap - n_live:
            live.fail(
                f"slot {slot}",
                f"redis available {available} + cooling {cooling or 0} != capacity {cap}"
                f" - live {n_live} (= {cap - n_live}); {r['confirmed']} confirmed",
            )
    return [sold, live]


_CONFIRMED_EVENTS = """
SELECT b.id, count(e.event_id) AS events
FROM bookings b
LEFT JOIN inventory_events e ON e.hold_id = b.id AND e.type = 'confirmed'
WHERE b.state = 'confirmed' AND ($1::text[] IS NULL OR b.slot_id = ANY($1::text[]))
GROUP BY b.id
"""

_ORPHAN_CONFIRMATIONS = """
SELECT e.hold_id, b.state
FROM inventory_events e LEFT JOIN bookings b ON b.id = e.hold_id
WHERE e.type = 'confirmed' AND coalesce(e.payload->>'kind', '') <> 'seat'
  AND (b.id IS NULL OR b.state_rank < 2)
  AND ($1::text[] IS NULL OR e.payload->>'slot' = ANY($1::text[]))
"""

_PERSON_DAY_DUPLICATES = """
SELECT b.person_hmac, s.resource_id, s.day, array_agg(b.id ORDER BY b.id) AS ids
FROM bookings b JOIN slots s ON s.id = b.slot_id
WHERE b.state IN ('held', 'confirmed') AND ($1::text[] IS NULL OR s.id = ANY($1::text[]))
GROUP BY b.person_hmac, s.resource_id, s.day
HAVING count(*) > 1
"""


async def check_confirmed_once(ctx: Context) -> list[CheckResult]:
    """Every confirmed booking is in Postgres exactly once: one row, one ``confirmed``
    event, the same state in Redis while its hold key lives, no confirmation without a
    row, no person twice on one resource-day; and every booking the clients were told
    was confirmed is there."""
    slot_filter = list(ctx.slot_ids) if ctx.slot_ids is not None else None
    once = CheckResult("confirmed booking exactly once")
    rows = await ctx.conn.fetch(_CONFIRMED_EVENTS, slot_filter)
    once.checked = len(rows)
    confirmed_ids = [r["id"] for r in rows]
    for r in rows:
        if r["events"] != 1:
            once.fail(f"booking {r['id']}", f"{r['events']} 'confirmed' events (expected 1)")
    for r in await ctx.conn.fetch(_ORPHAN_CONFIRMATIONS, slot_filter):
        once.fail(
            f"booking {r['hold_id']}",
            "confirmed event without a confirmed row"
            + (f" (row is {r['state']})" if r["state"] else " (no row)"),
        )
    for r in await ctx.conn.fetch(_PERSON_DAY_DUPLICATES, slot_filter):
        once.fail(
            f"person {r['person_hmac'][:12]}…",
            f"{len(r['ids'])} live bookings on resource {r['resource_id']} {r['day']}: "
            + ", ".join(r["ids"]),
        )

    agree = CheckResult("confirmed redis state == postgres", checked=0)
    for start in range(0, len(confirmed_ids), 2000):
        chunk = confirmed_ids[start : start + 2000]
        async with ctx.redis.pipeline(transaction=False) as pipe:
            for hold_id in chunk:
                pipe.hget(ctx.keys.hold(shard_from_id(hold_id), hold_id), "state")
            states = await pipe.execute()
        for hold_id, state in zip(chunk, states, strict=True):
            if state is None:
                continue  # the hold key expired with its slot
            agree.checked += 1
            if state != "confirmed":
                agree.fail(f"booking {hold_id}", f"redis says {state}, postgres confirmed")
    results = [once, agree]

    if ctx.expected_confirmed is not None:
        told = CheckResult("client-confirmed present", checked=len(ctx.expected_confirmed))
        found = {
            r["id"]: r
            for r in await ctx.conn.fetch(
                "SELECT id, state, confirmed_at FROM bookings WHERE id = ANY($1::text[])",
                list(ctx.expected_confirmed),
            )
        }
        for hold_id in ctx.expected_confirmed:
            row = found.get(hold_id)
            if row is None:
                told.fail(f"booking {hold_id}", "told confirmed, but not in postgres")
            elif row["confirmed_at"] is None:
                told.fail(f"booking {hold_id}", f"told confirmed, but postgres says {row['state']}")
        results.append(told)
    return results


# --- train seats -----------------------------------------------------------------------

LIVE_TICKETS = "('held', 'confirmed')"
# The two queries below are also the chaos run's seat verdict (reservation/faults/chaos.py).

SEAT_SEGMENT_SHARED = f"""
SELECT x.run_id, x.seat_class, x.coach, x.seat,
       x.id AS first, x.seg_from AS first_from, x.seg_to AS first_to,
       y.id AS second, y.seg_from AS second_from, y.seg_to AS second_to
FROM tickets x JOIN tickets y
  ON x.run_id = y.run_id AND x.seat_class = y.seat_class AND x.coach = y.coach
     AND x.seat = y.seat AND x.id < y.id
     AND x.seg_from < y.seg_to AND y.seg_from < x.seg_to
WHERE x.state IN {LIVE_TICKETS} AND y.state IN {LIVE_TICKETS}
ORDER BY x.run_id, x.coach, x.seat
"""

PERSON_RUN_DUPLICATES = f"""
SELECT person_hmac, run_id, array_agg(id ORDER BY id) AS ids
FROM tickets WHERE state IN {LIVE_TICKETS}
GROUP BY person_hmac, run_id HAVING count(*) > 1
"""

# Orders paid at some point (their tickets may be refunded or changed since) and how many
# 'confirmed' events the persister wrote for each.
_PAID_ORDER_EVENTS = """
SELECT t.hold_id, count(DISTINCT e.event_id) AS events
FROM tickets t
LEFT JOIN inventory_events e ON e.hold_id = t.hold_id AND e.type = 'confirmed'
WHERE t.confirmed_at IS NOT NULL
GROUP BY t.hold_id
"""

_ORPHAN_SEAT_CONFIRMATIONS = """
SELECT e.hold_id FROM inventory_events e
WHERE e.type = 'confirmed' AND e.payload->>'kind' = 'seat'
  AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.hold_id = e.hold_id
                  AND t.confirmed_at IS NOT NULL)
"""


async def check_seat_segments(ctx: Context) -> list[CheckResult]:
    """Postgres: no seat-segment in two live (held or confirmed) tickets, so sold <=
    capacity on every segment; one live ticket per person per run; every paid order has
    exactly one ``confirmed`` event and no seat confirmation lacks its paid tickets."""
    live = int(
        await ctx.conn.fetchval(f"SELECT count(*) FROM tickets WHERE state IN {LIVE_TICKETS}")
    )
    once_sold = CheckResult("seat-segment sold once (postgres)", checked=live)
    for r in await ctx.conn.fetch(SEAT_SEGMENT_SHARED):
        once_sold.fail(
            f"seat {r['run_id']}/{r['seat_class']} {r['coach']}-{r['seat']}",
            f"tickets {r['first']} [{r['first_from']}, {r['first_to']}) and {r['second']} "
            f"[{r['second_from']}, {r['second_to']}) share a segment",
        )
    for r in await ctx.conn.fetch(PERSON_RUN_DUPLICATES):
        once_sold.fail(
            f"person {r['person_hmac'][:12]}…",
            f"{len(r['ids'])} live tickets on run {r['run_id']}: " + ", ".join(r["ids"]),
        )
    paid = CheckResult("paid train order exactly once")
    rows = await ctx.conn.fetch(_PAID_ORDER_EVENTS)
    paid.checked = len(rows)
    for r in rows:
        if r["events"] != 1:
            paid.fail(f"order {r['hold_id']}", f"{r['events']} 'confirmed' events (expected 1)")
    for r in await ctx.conn.fetch(_ORPHAN_SEAT_CONFIRMATIONS):
        paid.fail(f"order {r['hold_id']}", "confirmed event without a paid ticket")
    return [once_sold, paid]


async def check_seats_match(ctx: Context) -> list[CheckResult]:
    """Redis == Postgres for train seats: every seat map, hold record and index of the
    runs that matter, as ``fairseat inventory reconcile`` compares them."""
    from reservation.services import open_services
    from reservation.workflows.rebuild_seats import SeatPart, SeatSnapshot

    # open_services insists on the signing keys; the reconciliation signs and hashes
    # nothing, so the checker need not know the service's.
    settings = ctx.settings.replace(
        secret_key=ctx.settings.secret_key or "unused-by-the-checker",
        id_hmac_key=ctx.settings.id_hmac_key or "unused-by-the-checker",
    )
    result = CheckResult("seats redis == postgres")
    async with open_services(settings, pg_pool_size=2) as services:
        part = SeatPart()
        snapshot = await part.read(services, services.clock())
        assert isinstance(snapshot, SeatSnapshot)
        result.checked = len(snapshot.units)  # (run, class) seat maps compared
        for diff in await part.compare(services, snapshot):
            result.fail(
                diff.subject, f"{diff.kind}: redis has {diff.redis}, postgres says {diff.postgres}"
            )
    return [result]


CHECKS: dict[str, list[Callable[[Context], Awaitable[list[CheckResult]]]]] = {
    "slots": [check_slot_counts, check_confirmed_once],
    "seats": [check_seat_segments, check_seats_match],
}


# --- running ---------------------------------------------------------------------------


def resolve_urls(settings: Settings) -> Settings:
    """Settings with both URLs: as configured, else from ``<data_dir>/runtime.json``
    (written by ``fairseat serve`` while its embedded servers run)."""
    if settings.database_url and settings.redis_url:
        return settings
    runtime = settings.data_dir / "runtime.json"
    try:
        info: dict[str, Any] = json.loads(Path(runtime).read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(
            f"DATABASE_URL/REDIS_URL are not set and {runtime} is unreadable ({exc}); "
            "is `fairseat serve` running on that data folder?"
        ) from exc
    return settings.replace(
        database_url=settings.database_url or info["database_url"],
        redis_url=settings.redis_url or info["redis_url"],
    )


async def drained(settings: Settings, *, timeout: float) -> CheckResult:
    """Wait (up to ``timeout``) until the persister has drained every shard's outbox."""
    from reservation.services import redis_client

    settings = resolve_urls(settings)
    keys = Keys(prefix=settings.key_prefix, shard_count=settings.shard_count)
    redis = redis_client(settings, max_connections=4)
    try:
        return await wait_drained(redis, keys, settings.shard_count, timeout=timeout)
    finally:
        if settings.redis_cluster:
            await redis.aclose()
        else:
            await redis.aclose(close_connection_pool=True)


async def check_invariants(
    settings: Settings,
    *,
    kinds: Sequence[str] = ("slots", "seats"),
    drain_timeout: float = 60.0,
    slot_ids: Sequence[str] | None = None,
    expected_confirmed: Collection[str] | None = None,
) -> Report:
    import asyncpg

    from reservation.services import redis_client

    settings = resolve_urls(settings)
    assert settings.database_url is not None
    keys = Keys(prefix=settings.key_prefix, shard_count=settings.shard_count)
    redis = redis_client(settings, max_connections=4)
    conn = await asyncpg.connect(settings.database_url)
    try:
        report = Report()
        report.results.append(
            await wait_drained(redis, keys, settings.shard_count, timeout=drain_timeout)
        )
        ctx = Context(
            conn,
            redis,
            keys,
            now=dt.datetime.now(dt.UTC),
            settings=settings,
            slot_ids=slot_ids,
            expected_confirmed=expected_confirmed,
        )
        for kind in kinds:
            for check in CHECKS[kind]:
                report.results.extend(await check(ctx))
        return report
    finally:
        await conn.close()
        if settings.redis_cluster:
            await redis.aclose()
        else:
            await redis.aclose(close_connection_pool=True)


def run_check(
    settings: Settings,
    *,
    drain_timeout: float = 60.0,
    expected_confirmed: Collection[str] | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Check, print the table, return the exit code (0 pass, 1 fail)."""
    report = asyncio.run(
        check_invariants(
            settings, drain_timeout=drain_timeout, expected_confirmed=expected_confirmed
        )
    )
    out(report.table())
    return 0 if report.ok else 1
