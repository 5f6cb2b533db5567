"""The notifier: recorded notifications -> senders, once per channel; due reminders ->
notifications.

A pass:
1. fires due reminders: one statement over the ``reminders_due`` index turns them into
   REMINDER notifications and marks them fired, in one transaction (a reminder fires once;
   a cancelled one never);
2. leases a batch of the delivery queue (``notification_pending``, filled by a trigger in
   the transaction that recorded the notification), ``FOR UPDATE SKIP LOCKED`` so several
   notifiers share the work without blocking each other;
3. sends each (notification, channel) that has no delivery row yet, a bounded number at a
   time;
4. in one transaction: inserts a delivery row per finished (notification, channel), drops
   the queue rows every channel is done with, and puts failed ones back with a backoff.

Guarantee (see docs/notifications.md): a (notification, channel) with a delivery row is
never sent again, across restarts. A send whose row was not committed is sent again by the
next pass, so an external receiver sees **at least once**, each attempt carrying the same
``Idempotency-Key`` (``<notification id>:<channel>``). The window is small: a notifier
asked to stop (SIGTERM, or its task cancelled) does not start new sends and commits the
rows of every send that completed before it exits; only a crash (kill -9, power) between a
send and that commit resends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from reservation.domain.clock import from_ms
from reservation.notifications import store
from reservation.notifications.senders import Sender, SendResult, build_senders
from reservation.services import Services
from reservation.settings import Settings
from reservation.store.db import is_transient

log = logging.getLogger("fairseat.notifier")


@dataclass
class PassResult:
    reminders_fired: int = 0
    delivered: int = 0
    failed: int = 0
    given_up: int = 0
    leased: int = 0


def backoff(attempts: int, *, base_s: float = 2.0, cap_s: float = 600.0) -> dt.timedelta:
    """Wait before the next pass retries a failed delivery (attempts: failures so far)."""
    return dt.timedelta(seconds=min(cap_s, base_s * 2 ** max(0, attempts)))


def senders_from_settings(settings: Settings) -> list[Sender]:
    return build_senders(
        settings.notify_senders,
        webhook_url=settings.notify_webhook_url,
        webhook_timeout_s=settings.notify_webhook_timeout_ms / 1000,
        webhook_attempts=settings.notify_webhook_attempts,
    )


@dataclass
class Notifier:
    services: Services
    senders: Sequence[Sender]
    batch_size: int = 200
    # A leased row belongs to this notifier until then; longer than any batch's sends.
    lease_s: float = 120.0
    concurrency: int = 32
    # Failed passes after which a channel gives a notification up (outcome 'failed').
    give_up_after: int = 12
    reminder_batch: int = 1000
    _seen: set[int] = field(default_factory=set)

    def _now(self) -> dt.datetime:
        return from_ms(self.services.clock())

    async def fire_reminders(self) -> int:
        now = self._now()
        total = 0
        while True:
            async with self.services.pool.acquire() as conn, conn.transaction():
                fired, _recorded = await store.fire_due_reminders(
                    conn, now=now, limit=self.reminder_batch
                )
            total += fired
            if fired < self.reminder_batch:
                break
        if total:
            self.services.metrics.reminders_fired.inc(total)
        return total

    async def deliver(self, stop: asyncio.Event | None = None) -> PassResult:
        """Lease one batch, send it, record the outcome. With ``stop`` set meanwhile, no new
        send starts; what completed is still recorded."""
        result = PassResult()
        now = self._now()
        async with self.services.pool.acquire() as conn:
            batch = await store.lease_pending(
                conn,
                now=now,
                limit=self.batch_size,
                lease_until=now + dt.timedelta(seconds=self.lease_s),
            )
        result.leased = len(batch)
        if not batch:
            self.services.metrics.notifier_lag.set(0)
            return result
        metrics = self.services.metrics
        for p in batch:
            if p.attempts == 0 and not p.done and p.notification.id not in self._seen:
                metrics.notifications_recorded.labels(p.notification.kind).inc()
        self._seen = {p.notification.id for p in batch}
        outcomes: dict[tuple[int, str], SendResult] = {}
        gate = asyncio.Semaphore(self.concurrency)

        async def one(p: store.Pending, sender: Sender) -> None:
            async with gate:
                if stop is not None and stop.is_set():
                    return
                key = f"{p.notification.id}:{sender.channel}"
                try:
                    outcome = await sender.send(p.notification, key)
                except Exception as exc:  # a sender must not raise; treat it as a failure
                    log.exception("sender %s raised", sender.channel)
                    outcome = SendResult(ok=False, detail=repr(exc))
                outcomes[(p.notification.id, sender.channel)] = outcome

        sends = [
            asyncio.ensure_future(one(p, s))
            for p in batch
            for s in self.senders
            if s.channel not in p.done
        ]
        try:
            if sends:
                await asyncio.gather(*sends)
        except asyncio.CancelledError:
            for task in sends:
                task.cancel()
            # Record what was sent before going: a new notifier must not send it again.
            await asyncio.shield(self._settle(batch, outcomes, now, result))
            raise
        await self._settle(batch, outcomes, now, result)
        oldest = batch[0].notification.created_at
        metrics.notifier_lag.set(max(0.0, (now - oldest).total_seconds()))
        return result

    async def _settle(
        self,
        batch: Sequence[store.Pending],
        outcomes: dict[tuple[int, str], SendResult],
        now: dt.datetime,
        result: PassResult,
    ) -> None:
        metrics = self.services.metrics
        rows: list[tuple[int, str, str, int]] = []
        finished: list[int] = []
        retry: list[tuple[int, dt.datetime]] = []
        untouched: list[int] = []
        for p in batch:
            nid = p.notification.id
            done = set(p.done)
            failed = False
            for sender in self.senders:
                if sender.channel in done:
                    continue
                outcome = outcomes.get((nid, sender.channel))
                if outcome is None:
                    continue
                if outcome.ok:
                    rows.append((nid, sender.channel, "delivered", p.attempts + 1))
                    done.add(sender.channel)
                    metrics.notifications_delivered.labels(sender.channel).inc()
                    result.delivered += 1
                elif outcome.permanent or p.attempts + 1 >= self.give_up_after:
                    log.error(
                        "notification %s: %s gave up (%s)", nid, sender.channel, outcome.detail
                    )
                    rows.append((nid, sender.channel, "failed", p.attempts + 1))
                    done.add(sender.channel)
                    metrics.notifications_failed.labels(sender.channel, "given_up").inc()
                    result.given_up += 1
                else:
                    log.warning(
                        "notification %s: %s failed (%s); retrying later",
                        nid,
                        sender.channel,
                        outcome.detail,
                    )
                    failed = True
                    metrics.notifications_failed.labels(sender.channel, "retry").inc()
                    result.failed += 1
            if all(s.channel in done for s in self.senders):
                finished.append(nid)
            elif failed:
                retry.append((nid, now + backoff(p.attempts)))
            else:
                untouched.append(nid)  # stopped before every channel was tried
        async with self.services.pool.acquire() as conn, conn.transaction():
            await store.record_deliveries(conn, rows, now)
            await store.settle(conn, finished=finished, retry=retry)
            await store.release_leases(conn, untouched)

    async def run_once(self, stop: asyncio.Event | None = None) -> PassResult:
        fired = await self.fire_reminders()
        result = await self.deliver(stop)
        result.reminders_fired = fired
        return result

    async def run(self, stop: asyncio.Event, *, idle_sleep: float = 0.25) -> None:
        delay = 0.1
        try:
            while not stop.is_set():
                try:
                    result = await self.run_once(stop)
                    delay = 0.1
                except Exception as exc:
                    if is_transient(exc):
                        log.warning("notifier waiting for Postgres: %r", exc)
                    else:
                        log.exception("notifier pass failed")
                    delay = min(delay * 2, 5.0)
                    await _sleep_or_stop(stop, delay)
                    continue
                if result.leased < self.batch_size:
                    await _sleep_or_stop(stop, idle_sleep)
        finally:
            for sender in self.senders:
                with contextlib.suppress(Exception):
                    await sender.aclose()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
