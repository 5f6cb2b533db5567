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
from reservation.store.db import is_transient

log = logging.getLogger("fairseat.persister")

GROUP = "persister"


@dataclass(frozen=True, slots=True)
class Entry:
    shard: int
    entry_id: str
    fields: dict[str, str]

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
    _failures: dict[str, int] = field(default_factory=dict)
    _last_claim: float = 0.0
    _groups_ready: bool = False
    # Own pending entries exist after a start (a previous life of this consumer) or a
    # failed pass; only then is re-reading history ("0") worth its round trip.
    _maybe_pending: bool = True

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

    async def _read(self, from_id: str) -> tuple[list[Entry], bool]:
        """Entries for this pass, and whether more were delivered to us than it returns."""
        keys = self.services.keys
        per_shard = max(10, self.batch_size // 4)
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.xreadgroup(
                    GROUP, self.consumer, {keys.outbox(shard): from_id}, count=per_shard
                )
            replies = await pipe.execute(raise_on_error=False)
        entries: list[Entry] = []
        for shard, reply in zip(self.shards, replies, strict=True):
            if isinstance(reply, redis.exceptions.ResponseError) and "NOGROUP" in str(reply):
                self._groups_ready = False
                continue
            if isinstance(reply, Exception):
                raise reply
            for _stream, items in _stream_items(reply):
                entries.extend(Entry(shard, eid, fields) for eid, fields in items if fields)
        # Cap one pass's work. The entries cut off are already delivered to this consumer
        # (pending): say so, or the next pass reads only new ones (">") and they wait for
        # XAUTOCLAIM (claim_idle_ms, 30 s by default) before anyone writes them.
        cap = self.batch_size * 4
        return entries[:cap], len(entries) > cap

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
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for shard, ids in by_shard.items():
                pipe.xack(keys.outbox(shard), GROUP, *ids)
            await pipe.execute()
        await self._trim(list(by_shard))

    async def _trim(self, shards: list[int]) -> None:
        """Drop entries every consumer group has acknowledged (bounded stream memory)."""
        client = self.services.redis
        for shard in shards:
            key = self.services.keys.outbox(shard)
            floor: str | None = None
            for group in await client.xinfo_groups(key):
                summary = await client.xpending(key, group["name"])
                candidate = summary["min"] if summary["pending"] else group["last-delivered-id"]
                if floor is None or _id_lt(candidate, floor):
                    floor = candidate
            if floor and floor != "0-0":
                await client.xtrim(key, minid=floor, approximate=False)

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
    async def run_once(self) -> PassResult:
        """One pass: own pending entries (after a failure or restart), stale entries of
        dead consumers, then new entries."""
        if not self._groups_ready:
            await self.ensure_groups()
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
            entries, more_pending = await self._read(">")
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
        backoff = 0.1
        while not stop.is_set():
            try:
                result = await self.run_once()
                backoff = 0.1
            except Exception as exc:
                if not (is_transient(exc) or isinstance(exc, redis.exceptions.RedisError)):
                    log.exception("persister pass failed")
                else:
                    log.warning("persister waiting for backends: %r", exc)
                result = PassResult()
                backoff = min(backoff * 2, 5.0)
                await _sleep_or_stop(stop, backoff)
                continue
            if result.retry_later or (result.written == 0 and result.dead_lettered == 0):
                await _sleep_or_stop(stop, idle_sleep)


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
