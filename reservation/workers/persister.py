"""The persister: outbox streams -> Postgres, batched, idempotent, acknowledged after COMMIT.

Always: an entry is XACKed only after the transaction that wrote it committed, so a crash
at any point replays it, and replays are harmless (``ON CONFLICT`` on the event id, ranked
booking states). Entries left pending by a dead consumer are taken over with XAUTOCLAIM
once idle. An entry that fails on its own (not because Postgres is down) is retried, and
after N deliveries moved to the shard's dead-letter stream for an operator.

Slot events become ``bookings`` rows; seat events (``kind=seat``) become ``tickets`` rows,
one per passenger, with the same forward-only ranking; both go to ``inventory_events``.

Persisters split the shards between them: worker ``i`` of ``n`` owns ``shard % n == i``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from inventory.outbox_event import event_fields
from reservation.domain.bookings import (
    BookingRow,
    EventRow,
    MalformedEvent,
    TicketRow,
    booking_from_event,
    event_row,
    is_seat_event,
    latest_per_booking,
    merge_tickets,
    tickets_from_event,
)
from reservation.notifications.recording import record_for_events  # --- notifications
from reservation.services import Services
from reservation.store import bookings as booking_store
from reservation.store.db import is_fenced_out, is_transient
from reservation.store.inventory_state import fence
from reservation.workflows.epoch_fence import write_epoch

log = logging.getLogger("fairseat.persister")

GROUP = "persister"
# Streams named by one XREADGROUP on a single node (the default 256 shards: one command).
_STREAMS_PER_READ = 1024


@dataclass(frozen=True, slots=True)
class Entry:
    shard: int
    entry_id: str
    fields: dict[str, str]

    def __post_init__(self) -> None:
        # Events come packed in one field (inventory.outbox_event); everything downstream
        # (rows, dead letters, notifications) reads them by name.
        object.__setattr__(self, "fields", event_fields(self.fields))

    @property
    def event_id(self) -> str:
        return f"{self.shard}:{self.entry_id}"


@dataclass
class PassResult:
    written: int = 0
    dead_lettered: int = 0
    retry_later: int = 0


def owned_shards(shard_count: int, index: int, total: int) -> list[int]:
    return [s for s in range(shard_count) if s % total == index]


@dataclass
class Persister:
    services: Services
    consumer: str
    shards: list[int]
    batch_size: int = 500
    dead_letter_after: int = 5
    claim_idle_ms: int = 30_000
    # Fence each pass's transactions by the epoch read before it read Redis (see
    # workflows.epoch_fence): a batch read before a rebuild started and written after the
    # rebuild read Postgres is refused, since the rebuild drained those entries itself,
    # or Redis lost them with what they describe. Off for the rebuild's own drain.
    fenced: bool = True
    _epoch: str = ""
    _failures: dict[str, int] = field(default_factory=dict)
    _last_claim: float = 0.0
    _groups_ready: bool = False
    # Own pending entries exist after a start (a previous life of this consumer) or a
    # failed pass; only then is re-reading history ("0") worth its round trip.
    _maybe_pending: bool = True
    # Redis Cluster only: per shard, when an empty stream is worth reading again.
    idle_backoff_min_s: float = 0.05
    # After a small batch, wait this long for more entries (fewer, fuller transactions).
    gather_s: float = 0.02
    idle_backoff_max_s: float = 0.5
    _idle_until: dict[int, float] = field(default_factory=dict)
    _idle_backoff: dict[int, float] = field(default_factory=dict)

    @property
    def _cluster(self) -> bool:
        return isinstance(self.services.redis, RedisCluster)

    # Stream plumbing -------------------------------------------------------------------
    async def ensure_groups(self) -> None:
        keys = self.services.keys
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                # From id 0: events appended before the group existed are persisted too.
                pipe.xgroup_create(keys.outbox(shard), GROUP, id="0", mkstream=True)
            results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result
        self._groups_ready = True

    async def _read(
        self, from_id: str, *, block_ms: int = 0, skip_idle: bool = False
    ) -> tuple[list[Entry], bool]:
        """Entries for this pass, and whether more were delivered to us than it returns.

        ``block_ms`` (new entries only, single node): wait up to that long for the first
        entry instead of returning empty. ``skip_idle`` (Redis Cluster, background loop):
        leave shards that were empty lately for a later pass (see ``_due``)."""
        per_shard = max(10, self.batch_size // 4)
        if self._cluster:
            entries = await self._read_per_shard(from_id, per_shard, skip_idle=skip_idle)
        else:
            entries = await self._read_multi(from_id, per_shard, block_ms=block_ms)
        # Cap one pass's work. The entries cut off are already delivered to this consumer
        # (pending): say so, or the next pass reads only new ones (">") and they wait for
        # XAUTOCLAIM (claim_idle_ms, 30 s by default) before anyone writes them.
        cap = self.batch_size * 4
        return entries[:cap], len(entries) > cap

    async def _read_multi(self, from_id: str, per_shard: int, *, block_ms: int) -> list[Entry]:
        """Single node: one XREADGROUP names many streams (COUNT applies per stream). One
        command per pass instead of one per shard: 256 commands a pass cost Redis the CPU
        that the hold path competes for, even when every stream is empty."""
        keys = self.services.keys
        shard_of = {keys.outbox(shard): shard for shard in self.shards}
        names = list(shard_of)
        chunks = [names[i : i + _STREAMS_PER_READ] for i in range(0, len(names), _STREAMS_PER_READ)]
        client = self.services.redis
        try:
            if len(chunks) == 1:
                # BLOCK replaces the idle sleep: an entry appended while we wait is read at
                # once (lower persister lag) and an idle persister costs Redis nothing.
                replies = [
                    await client.xreadgroup(
                        GROUP,
                        self.consumer,
                        dict.fromkeys(names, from_id),
                        count=per_shard,
                        block=block_ms if block_ms > 0 and from_id == ">" else None,
                    )
                ]
            else:
                async with client.pipeline(transaction=False) as pipe:
                    for chunk in chunks:
                        pipe.xreadgroup(
                            GROUP, self.consumer, dict.fromkeys(chunk, from_id), count=per_shard
                        )
                    replies = await pipe.execute()
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # A stream lost its group (deleted, or a Redis that lost its data): recreate
            # the groups next pass; one missing group fails the whole multi-stream read.
            self._groups_ready = False
            return []
        entries: list[Entry] = []
        for reply in replies:
            for stream, items in _stream_items(reply):
                shard = shard_of[stream]
                entries.extend(Entry(shard, eid, fields) for eid, fields in items if fields)
        return entries

    async def _read_per_shard(
        self, from_id: str, per_shard: int, *, skip_idle: bool
    ) -> list[Entry]:
        """Redis Cluster: a multi-key command must stay in one hash slot and every shard
        has its own, so one XREADGROUP per shard (redis-py groups them per node). In the
        background loop, a shard found empty is read again only after a backoff that
        doubles from ``idle_backoff_min_s`` up to ``idle_backoff_max_s``: most shards of
        an idle stretch are skipped."""
        keys = self.services.keys
        now = time.monotonic()
        shards = self.shards
        if skip_idle and from_id == ">":
            shards = [s for s in self.shards if self._idle_until.get(s, 0.0) <= now]
            if not shards:
                return []
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for shard in shards:
                pipe.xreadgroup(
                    GROUP, self.consumer, {keys.outbox(shard): from_id}, count=per_shard
                )
            replies = await pipe.execute(raise_on_error=False)
        entries: list[Entry] = []
        for shard, reply in zip(shards, replies, strict=True):
            if isinstance(reply, redis.exceptions.ResponseError) and "NOGROUP" in str(reply):
                self._groups_ready = False
                continue
            if isinstance(reply, Exception):
                raise reply
            found = [
                Entry(shard, eid, fields)
                for _stream, items in _stream_items(reply)
                for eid, fields in items
                if fields
            ]
            if from_id == ">":
                self._note_idle(shard, now, empty=not found)
            entries.extend(found)
        return entries

    def _note_idle(self, shard: int, now: float, *, empty: bool) -> None:
        if not empty:
            self._idle_backoff.pop(shard, None)
            self._idle_until.pop(shard, None)
            return
        last = self._idle_backoff.get(shard)
        backoff = self.idle_backoff_min_s if last is None else last * 2
        backoff = min(max(backoff, self.idle_backoff_min_s), self.idle_backoff_max_s)
        self._idle_backoff[shard] = backoff
        self._idle_until[shard] = now + backoff

    async def _claim_stale(self) -> list[Entry]:
        keys = self.services.keys
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.xautoclaim(
                    keys.outbox(shard),
                    GROUP,
                    self.consumer,
                    min_idle_time=self.claim_idle_ms,
                    start_id="0-0",
                    count=self.batch_size,
                )
            replies = await pipe.execute(raise_on_error=False)
        entries: list[Entry] = []
        for shard, reply in zip(self.shards, replies, strict=True):
            if isinstance(reply, Exception):
                continue
            for eid, fields in reply[1]:
                if fields:
                    entries.append(Entry(shard, eid, fields))
        return entries

    async def _ack(self, entries: list[Entry]) -> None:
        if not entries:
            return
        by_shard: dict[int, list[str]] = defaultdict(list)
        for e in entries:
            by_shard[e.shard].append(e.entry_id)
        keys = self.services.keys
        streams = [keys.outbox(shard) for shard in by_shard]
        # The acknowledgements and the groups' state for trimming in one round trip (the
        # XINFOs run after the XACKs: a pipeline keeps its order).
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for key, ids in zip(streams, by_shard.values(), strict=True):
                pipe.xack(key, GROUP, *ids)
            for key in streams:
                pipe.xinfo_groups(key)
            replies = await pipe.execute()
        await self._trim(streams, replies[len(streams) :])

    async def _trim(self, streams: list[str], groups_of: list[Any]) -> None:
        """Drop entries every consumer group has acknowledged (bounded stream memory).

        Per stream, the floor is the oldest entry some group still needs: its oldest
        pending entry, or (nothing pending) the last one it was delivered. Batched: one
        round trip for the groups with pending entries, one for the trims."""
        client = self.services.redis
        floors: dict[str, str | None] = {}
        # (stream, group, last delivered) of groups whose oldest pending entry we need
        asks: list[tuple[str, str, str]] = []
        for key, groups in zip(streams, groups_of, strict=True):
            floor: str | None = None
            for group in groups:
                if group["pending"]:
                    asks.append((key, group["name"], group["last-delivered-id"]))
                    continue
                candidate = group["last-delivered-id"]
                if floor is None or _id_lt(candidate, floor):
                    floor = candidate
            floors[key] = floor
        if asks:
            async with client.pipeline(transaction=False) as pipe:
                for key, name, _last in asks:
                    pipe.xpending(key, name)
                summaries = await pipe.execute()
            for (key, _name, last), summary in zip(asks, summaries, strict=True):
                floor = floors[key]
                # Acknowledged meanwhile (nothing pending now): as if read without pending.
                candidate = summary["min"] if summary["pending"] else last
                if floor is None or _id_lt(candidate, floor):
                    floors[key] = candidate
        trims = [(key, floor) for key, floor in floors.items() if floor and floor != "0-0"]
        if trims:
            async with client.pipeline(transaction=False) as pipe:
                for key, floor in trims:
                    pipe.xtrim(key, minid=floor, approximate=False)
                await pipe.execute()

    async def _dead_letter(self, entry: Entry, reason: str) -> None:
        keys = self.services.keys
        async with self.services.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                keys.dead_letters(entry.shard),
                {**entry.fields, "_entry": entry.entry_id, "_reason": reason[:500]},
            )
            pipe.xack(keys.outbox(entry.shard), GROUP, entry.entry_id)
            await pipe.execute()
        self._failures.pop(entry.event_id, None)
        self.services.metrics.dead_letters.inc()
        log.error("dead-lettered %s: %s", entry.event_id, reason)

    # Writing ---------------------------------------------------------------------------
    async def _write(
        self, events: list[EventRow], bookings: list[BookingRow], tickets: list[TicketRow]
    ) -> None:
        async with self.services.pool.acquire() as conn, conn.transaction():
            await fence(conn, self.services.keys.prefix, self._epoch)
            await booking_store.insert_events(conn, events)
            await booking_store.upsert_bookings(conn, latest_per_booking(bookings))
            await booking_store.upsert_tickets(conn, merge_tickets(tickets))
            # --- notifications (issue 6): recorded in the transaction that persists the
            # events, from every event (not the collapsed rows): hold and confirm in one
            # batch are two notifications. Dedupe keys name the change, so replays are
            # no-ops. A few set-based statements per batch, none per row.
            await record_for_events(
                conn,
                bookings,
                tickets,
                reminder_lead=dt.timedelta(seconds=self.services.settings.notify_reminder_lead_s),
                # --- vaccine (issue 6): the vaccine workflows note these holds themselves.
                series_holds={e.hold_id for e in events if e.payload.get("series")},
            )

    def _rows(self, entry: Entry) -> tuple[EventRow, list[BookingRow], list[TicketRow]]:
        """What one entry writes; MalformedEvent if it can never be written."""
        event = event_row(entry.event_id, entry.fields)
        if is_seat_event(entry.fields):
            # The verification code of an e-ticket is keyed by the service secret.
            tickets = tickets_from_event(entry.fields, code_key=self.services.secret_key)
            return event, [], tickets
        return event, [booking_from_event(entry.fields)], []

    async def write_entry(self, entry: Entry) -> None:
        """Write one entry in a transaction of its own (used to replay dead letters under
        their original event id, so a replay can never duplicate an event)."""
        event, entry_bookings, entry_tickets = self._rows(entry)
        await self._write([event], entry_bookings, entry_tickets)

    async def _process(self, entries: list[Entry]) -> PassResult:
        result = PassResult()
        good: list[Entry] = []
        events: list[EventRow] = []
        bookings: list[BookingRow] = []
        tickets: list[TicketRow] = []
        for entry in entries:
            try:
                event, entry_bookings, entry_tickets = self._rows(entry)
                events.append(event)
                bookings.extend(entry_bookings)
                tickets.extend(entry_tickets)
                good.append(entry)
            except MalformedEvent as exc:
                # Deterministic: no number of retries can fix it.
                await self._dead_letter(entry, f"malformed: {exc}")
                result.dead_lettered += 1
        if not good:
            return result
        try:
            await self._write(events, bookings, tickets)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("batch of %d failed (%r); retrying entries one by one", len(good), exc)
            return await self._process_one_by_one(good, result)
        await self._ack(good)
        self._note_lag(good)
        result.written += len(good)
        self.services.metrics.persisted.inc(len(good))
        return result

    async def _process_one_by_one(self, entries: list[Entry], result: PassResult) -> PassResult:
        for entry in entries:
            try:
                event, entry_bookings, entry_tickets = self._rows(entry)
                await self._write([event], entry_bookings, entry_tickets)
            except Exception as exc:
                if is_transient(exc):
                    raise
                failures = self._failures.get(entry.event_id, 0) + 1
                self._failures[entry.event_id] = failures
                delivered = await self._times_delivered(entry)
                if max(failures, delivered) >= self.dead_letter_after:
                    await self._dead_letter(entry, repr(exc))
                    result.dead_lettered += 1
                else:
                    result.retry_later += 1
                continue
            await self._ack([entry])
            self._failures.pop(entry.event_id, None)
            result.written += 1
            self.services.metrics.persisted.inc()
        return result

    async def _times_delivered(self, entry: Entry) -> int:
        rows = await self.services.redis.xpending_range(
            self.services.keys.outbox(entry.shard),
            GROUP,
            min=entry.entry_id,
            max=entry.entry_id,
            count=1,
        )
        return int(rows[0]["times_delivered"]) if rows else 0

    def _note_lag(self, entries: list[Entry]) -> None:
        oldest = min(int(e.entry_id.split("-")[0]) for e in entries)
        self.services.metrics.persister_lag.set(max(0.0, time.time() - oldest / 1000))

    # Loop ------------------------------------------------------------------------------
    async def run_once(self, *, block_ms: int = 0, skip_idle: bool = False) -> PassResult:
        """One pass: own pending entries (after a failure or restart), stale entries of
        dead consumers, then new entries. ``block_ms``/``skip_idle``: see ``_read`` (the
        background loop uses them; a pass called by hand reads every shard at once)."""
        if not self._groups_ready:
            await self.ensure_groups()
        self._epoch = await write_epoch(self.services, reload=True) if self.fenced else ""
        total = PassResult()
        entries: list[Entry] = []
        # Whether own pending entries may outlive this pass. History ("0") comes one page
        # per shard: while it returns entries, read it again next pass (an empty read ends
        # that). Before, a backlog longer than a page (a restart after a crash) was left
        # unread until XAUTOCLAIM found it idle.
        more_pending = False
        if self._maybe_pending:
            entries, _ = await self._read("0")
            more_pending = bool(entries)
        self._maybe_pending = True  # until this pass ends cleanly
        now = time.monotonic()
        if now - self._last_claim >= self.claim_idle_ms / 2000:
            self._last_claim = now
            entries.extend(await self._claim_stale())
        if not entries:
            entries, more_pending = await self._read(">", block_ms=block_ms, skip_idle=skip_idle)
        if entries:
            # Same entry may come from "0" and from a claim: write it once.
            unique = list({e.event_id: e for e in entries}.values())
            for start in range(0, len(unique), self.batch_size):
                part = await self._process(unique[start : start + self.batch_size])
                total.written += part.written
                total.dead_lettered += part.dead_lettered
                total.retry_later += part.retry_later
        self._maybe_pending = total.retry_later > 0 or more_pending
        return total

    async def run(self, stop: asyncio.Event, *, idle_sleep: float = 0.05) -> None:
        """Passes until ``stop``. Idle on a single node: the next pass waits in Redis
        (XREADGROUP BLOCK, ``idle_sleep`` at most) for new entries instead of sleeping;
        on a cluster it sleeps, and empty shards back off on their own."""
        backoff = 0.1
        idle = False
        while not stop.is_set():
            try:
                result = await self.run_once(
                    block_ms=max(1, int(idle_sleep * 1000)) if idle else 0, skip_idle=True
                )
                backoff = 0.1
            except Exception as exc:
                if is_fenced_out(exc) and self.services.slots.guard is not None:
                    self.services.slots.guard.invalidate()  # a rebuild: read the new epoch
                if not (is_transient(exc) or isinstance(exc, redis.exceptions.RedisError)):
                    log.exception("persister pass failed")
                else:
                    log.warning("persister waiting for backends: %r", exc)
                idle = False
                backoff = min(backoff * 2, 5.0)
                await _sleep_or_stop(stop, backoff)
                continue
            idle = result.written == 0 and result.dead_lettered == 0
            # Idle on a single node: no sleep, the next pass blocks in Redis instead.
            if result.retry_later or (idle and self._cluster):
                await _sleep_or_stop(stop, idle_sleep)
            elif 0 < result.written < self.batch_size // 4:
                # A small batch: let the next one fill a little. Each transaction and
                # acknowledgement has a fixed cost (several statements, three Redis round
                # trips), which at a few entries per pass dominated the persister's CPU,
                # taken from the same cores as the hold path. Confirmed bookings do not
                # wait for the persister (they commit before the answer).
                await _sleep_or_stop(stop, self.gather_s)


def _stream_items(reply: Any) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """XREADGROUP replies come as a list (RESP2) or a dict (RESP3); normalise."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(stream, items) for stream, items in reply]


def _id_lt(a: str, b: str) -> bool:
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) < (int(bms), int(bseq or 0))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
