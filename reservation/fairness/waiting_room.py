"""The waiting room of queued sales: create a sale (commitment first), let citizens join,
draw the opening window's order, admit people at the pace of the remaining stock, issue
their queue tokens, and tell everyone still waiting when the stock runs out.

The rules are in :mod:`reservation.fairness.waiting_room_rules` (pure) and
:mod:`reservation.fairness.lottery`; the queue itself is one Redis shard per sale
(:mod:`inventory.queue_engine`); Postgres keeps the sale, the published joiners list and
the audit entries. docs/fairness.md tells the whole story.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from inventory.fairness_engine import Limit, RateLimiter, TokenLedger
from inventory.fairness_keys import SCOPE_POLL
from inventory.keys import Keys
from inventory.queue_engine import JoinRefused, QueueEngine, QueueMissing, QueueStatus
from inventory.script_client import ScriptClient
from inventory.slot_engine import SlotEngine
from reservation.domain.clock import Clock, from_ms, to_ms
from reservation.domain.sale_window import SaleWindow, parse_release
from reservation.errors import Conflict, NotFound, ValidationFailed
from reservation.fairness import audit, lottery
from reservation.fairness.errors import NotInQueue, QueueSoldOut, RateLimited, SaleOver
from reservation.fairness.tokens import QueueTokenSigner
from reservation.fairness.waiting_room_rules import (
    Estimate,
    Sale,
    derive_seed,
    estimate,
    join_id_key,
    parse_networks,
)
from reservation.notifications.record import NotificationKind, record_notification
from reservation.settings import Settings
from reservation.store import sales as sale_store

T = TypeVar("T")

RULE = "fairseat-waiting-room/1"
WAITLIST_PATH = "/v1/waitlist"  # engineer D's route: where a sold-out citizen goes next
_REFRESH_S = 1.0  # how stale a process's view of the queued sales may be
_MEASURE_S = 0.25  # how often a process re-reads a slot sale's live stock
_MAX_ADMIT_PER_CALL = 1000


@dataclass(frozen=True, slots=True)
class JoinView:
    sale_id: str
    join_id: str
    arrival: int
    joined_ms: int
    in_window: bool
    new: bool


@dataclass(frozen=True, slots=True)
class StatusView:
    sale: Sale
    status: QueueStatus
    estimate: Estimate
    token: str | None
    now_ms: int


class WaitingRoom:
    """One per process; holds the fairness gate's Redis clients too (rate limits, token
    ledger), so the hold workflows reach everything through ``services.waiting_room``."""

    def __init__(
        self,
        *,
        client: Any,
        keys: Keys,
        calls: ScriptClient,
        pool: Any,
        settings: Settings,
        clock: Clock,
        secret: bytes,
        slots: SlotEngine,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self.slots = slots
        self.queue = QueueEngine(client, keys, calls)
        self.limiter = RateLimiter(client, keys, calls)
        self.ledger = TokenLedger(client, keys, calls)
        self.signer = QueueTokenSigner(secret)
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self.rate_limit_exempt = parse_networks(settings.rate_limit_exempt)
        self.limits = {
            "acct": _limit(settings.hold_rate_per_account, settings.hold_burst_per_account),
            "person": _limit(settings.hold_rate_per_person, settings.hold_burst_per_person),
            "ip": _limit(settings.hold_rate_per_address, settings.hold_burst_per_address),
            "poll": _limit(
                settings.queue_poll_rate_per_account, settings.queue_poll_burst_per_account
            ),
        }
        self._secret = secret
        self._join_key = join_id_key(secret)
        self._sales: dict[str, Sale] = {}
        self._by_slot: dict[str, str] = {}
        self._by_date: dict[str, str] = {}
        self._loaded_at = -math.inf
        self._reading: asyncio.Future[None] | None = None
        self._drawn: set[str] = set()
        self._draw_locks: dict[str, asyncio.Lock] = {}
        # sale id -> (monotonic time, clock ms, measured stock) of the last measurement
        self._measured: dict[str, tuple[float, int, int | None]] = {}
        self._notifying: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def load(self) -> None:
        """Load every script now (at start-up), not on the first call of a rush."""
        await self.queue.load()
        await self.limiter.load()
        await self.ledger.load()

    async def drain(self) -> None:
        """Wait for background work (sold-out notices) started by this process."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.drain()

    # Which sale covers a hold -------------------------------------------------------------
    async def _refresh(self, *, force: bool = False) -> None:
        """Re-read the queued sales when the view is a second old. One read at a time per
        process: the requests of a rush that find the view stale keep using it meanwhile
        (a herd of identical queries would empty the Postgres pool)."""
        if not force and time.monotonic() - self._loaded_at < _REFRESH_S:
            return
        if self._reading is not None and not force:
            if self._loaded_at > -math.inf:
                return
            await asyncio.shield(self._reading)
            return
        self._reading = asyncio.ensure_future(self._read_sales())
        try:
            await asyncio.shield(self._reading)
        finally:
            self._reading = None

    async def _read_sales(self) -> None:
        since = from_ms(self.clock()) - dt.timedelta(days=1)
        async with self.pool.acquire() as conn:
            sales = await sale_store.sales_ending_after(conn, since)
        self._sales = {s.sale_id: s for s in sales}
        self._by_slot = {slot: s.sale_id for s in sales for slot in s.slot_ids}
        self._by_date = {s.train_date: s.sale_id for s in sales if s.train_date}
        self._loaded_at = time.monotonic()

    async def sale_for_slot(self, slot_id: str) -> Sale | None:
        """The queued sale covering this slot now, if any."""
        await self._refresh()
        sale = self._sales.get(self._by_slot.get(slot_id, ""))
        return sale if sale is not None and sale.queued_at(self.clock()) else None

    async def sale_for_train(self, boarding_date: dt.date) -> Sale | None:
        await self._refresh()
        sale = self._sales.get(self._by_date.get(boarding_date.isoformat(), ""))
        return sale if sale is not None and sale.queued_at(self.clock()) else None

    async def cached(self, sale_id: str) -> Sale:
        """The sale as this process last read it (at most a second old): the join and
        poll paths of a rush must not query Postgres per request. Its seed and sold-out
        flag may lag; nothing decides on them."""
        await self._refresh()
        sale = self._sales.get(sale_id)
        return sale if sale is not None else await self.get(sale_id)

    async def get(self, sale_id: str) -> Sale:
        async with self.pool.acquire() as conn:
            sale = await sale_store.get_sale(conn, sale_id)
        if sale is None:
            raise NotFound("No such sale.")
        return sale

    # Creating a sale ----------------------------------------------------------------------
    async def create_sale(
        self,
        *,
        sale_id: str,
        kind: str,
        actor: str,
        provider_id: str | None = None,
        release_at: dt.datetime | None = None,
        train_date: dt.date | None = None,
        stock: int | None = None,
        window_seconds: int | None = None,
        admit_factor: int | None = None,
        admission_seconds: int | None = None,
        open_minutes: int | None = None,
    ) -> Sale:
        """Define a queued sale, log its release and the draw's commitment, open its queue.

        Always before the release: the commitment must be public before anyone can join.
        """
        s = self.settings
        now = self.clock()
        window_ms = 1000 * (s.queue_window_seconds if window_seconds is None else window_seconds)
        slot_ids: tuple[str, ...] = ()
        async with self.pool.acquire() as conn:
            if kind == "train":
                if train_date is None or stock is None:
                    raise ValidationFailed(
                        errors=[
                            {
                                "field": "train_date",
                                "message": "a train sale needs train_date and stock",
                            }
                        ]
                    )
                window = SaleWindow(s.train_sale_days, parse_release(s.train_release_time))
                release_ms = to_ms(window.release_at(train_date))
            else:
                if provider_id is None or release_at is None:
                    raise ValidationFailed(
                        errors=[
                            {
                                "field": "release_at",
                                "message": "a slot sale needs provider_id and release_at",
                            }
                        ]
                    )
                release_ms = to_ms(release_at)
                found = await sale_store.released_slots(conn, provider_id, release_at)
                if not found:
                    raise ValidationFailed(
                        errors=[
                            {
                                "field": "release_at",
                                "message": "no open slot of this "
                                "provider is released at this moment: publish them first",
                            }
                        ]
                    )
                slot_ids = tuple(slot for slot, _ in found)
                stock = sum(capacity for _, capacity in found)
        if release_ms <= now:
            raise ValidationFailed(
                errors=[
                    {
                        "field": "release_at",
                        "message": "must be in the future: the draw's "
                        "commitment is published before the release",
                    }
                ]
            )
        await self._refresh(force=True)
        taken = [slot for slot in slot_ids if slot in self._by_slot]
        if taken or (train_date is not None and train_date.isoformat() in self._by_date):
            raise Conflict("Another queued sale already covers this inventory.")
        window_ends = release_ms + window_ms
        open_ms = 60_000 * (s.queue_open_minutes if open_minutes is None else open_minutes)
        salt = secrets.token_bytes(16)
        seed = derive_seed(self._secret, sale_id, salt)
        assert stock is not None
        sale = Sale(
            sale_id=sale_id,
            kind=kind,
            provider_id=provider_id if kind == "slots" else None,
            train_date=train_date.isoformat() if kind == "train" and train_date else None,
            release_ms=release_ms,
            window_ends_ms=window_ends,
            ends_ms=max(window_ends + 1000, release_ms + open_ms),
            admit_factor=s.queue_admit_factor if admit_factor is None else admit_factor,
            admission_ttl_ms=1000
            * (s.queue_admission_seconds if admission_seconds is None else admission_seconds),
            stock=stock,
            commitment=lottery.commitment(seed),
            seed_hex=None,
            window_count=None,
            sold_out_notified=False,
            slot_ids=slot_ids,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            if not await sale_store.insert_sale(conn, sale, salt=salt, created_by=actor):
                raise Conflict("A sale with this id exists already.")
            await audit.append(conn, audit.Kind.RELEASE, sale_id, actor, release_payload(sale))
            await audit.append(
                conn,
                audit.Kind.LOTTERY_COMMITMENT,
                sale_id,
                "system",
                lottery.commitment_payload(sale.commitment, sale.window_ends_ms),
            )
        await self._open(sale)
        self._loaded_at = -math.inf
        return sale

    async def _open(self, sale: Sale) -> None:
        await self.queue.open(
            sale.sale_id,
            now_ms=self.clock(),
            window_ends_ms=sale.window_ends_ms,
            release_ms=sale.release_ms,
            ends_ms=sale.ends_ms,
            admit_factor=sale.admit_factor,
            admission_ttl_ms=sale.admission_ttl_ms,
            stock=sale.stock,
            retain_until_ms=sale.ends_ms + 86_400_000,
        )

    async def _queue_call(self, sale: Sale, work: Callable[[], Awaitable[T]]) -> T:
        """Run a queue step; a queue Redis does not know (it lost its data, or the opening
        call failed after the commit) is opened again from the record, once."""
        try:
            return await work()
        except QueueMissing:
            await self._open(sale)
            return await work()

    # Joining --------------------------------------------------------------------------------
    async def join(self, sale_id: str, account_id: str) -> JoinView:
        sale = await self.cached(sale_id)
        now = self.clock()
        if now >= sale.ends_ms:
            raise SaleOver()
        join_id = lottery.join_id(self._join_key, sale_id, account_id)
        try:
            joined = await self._queue_call(
                sale,
                lambda: self.queue.join(
                    sale_id, account_id=account_id, join_id=join_id, now_ms=now
                ),
            )
        except JoinRefused as exc:
            if exc.code == -3:
                raise QueueSoldOut(waitlist=WAITLIST_PATH) from None
            raise SaleOver() from None
        if now >= sale.window_ends_ms:
            await self.ensure_drawn(sale)
        return JoinView(
            sale_id, join_id, joined.arrival, joined.joined_ms, joined.late_rank == 0, joined.new
        )

    # The draw -------------------------------------------------------------------------------
    async def ensure_drawn(self, sale: Sale) -> bool:
        """Close the window and draw, once the window has ended (any process may; the first
        one's result stands). True when the sale's order is placed."""
        sale_id = sale.sale_id
        if sale_id in self._drawn:
            return True
        if self.clock() < sale.window_ends_ms:
            return False
        lock = self._draw_locks.setdefault(sale_id, asyncio.Lock())
        async with lock:
            if sale_id in self._drawn:
                return True
            now = self.clock()
            window = await self._queue_call(
                sale, lambda: self.queue.close_window(sale_id, now_ms=now)
            )
            if window is None:
                return False
            by_join_id = {w.join_id: w.account_id for w in window}
            joiners = [lottery.Joiner(w.join_id, w.arrival, w.joined_ms) for w in window]
            async with self.pool.acquire() as conn, conn.transaction():
                row = await sale_store.lock_sale(conn, sale_id)
                if row["seed"] is None:
                    seed = derive_seed(
                        self._secret, sale_id, await sale_store.salt_of(conn, sale_id)
                    )
                    order = lottery.draw_order(seed, joiners, sale.window_ends_ms)
                    # The list is fixed in the log before the seed is revealed (same
                    # transaction, so both are public together, in this order).
                    await audit.append(
                        conn,
                        audit.Kind.LOTTERY_JOINERS,
                        sale_id,
                        "system",
                        lottery.joiners_payload(joiners),
                    )
                    await audit.append(
                        conn, audit.Kind.LOTTERY_SEED, sale_id, "system", lottery.seed_payload(seed)
                    )
                    places = lottery.positions(order)
                    await sale_store.record_draw(
                        conn,
                        sale_id,
                        seed_hex=seed.hex(),
                        joiners=[
                            (j.join_id, j.arrival, j.joined_ms, places[j.join_id]) for j in joiners
                        ],
                    )
                else:
                    seed = lottery.seed_from_hex(row["seed"])
                    order = lottery.draw_order(seed, joiners, sale.window_ends_ms)
            await self.queue.place(
                sale_id, order=[by_join_id[j] for j in order], now_ms=self.clock()
            )
            self._drawn.add(sale_id)
            return True

    # Status and admission ---------------------------------------------------------------------
    async def _measured_remaining(self, sale: Sale) -> tuple[int | None, int]:
        """A slot sale's live stock (sum of its slots' available places) and when it was
        read, re-read at most every 250 ms per process; None for train sales (they count
        the tickets held through the queue). The queue ignores a reading older than its
        last counted hold, so a stale one never admits people for places just taken."""
        if not sale.slot_ids:
            return None, 0
        cached = self._measured.get(sale.sale_id)
        if cached is not None and time.monotonic() - cached[0] < _MEASURE_S:
            return cached[2], cached[1]
        read_at = self.clock()
        available = await self.slots.available(list(sale.slot_ids))
        values = list(available.values())
        measured = None if any(v is None for v in values) else sum(v or 0 for v in values)
        self._measured[sale.sale_id] = (time.monotonic(), read_at, measured)
        return measured, read_at

    async def status(self, sale_id: str, account_id: str) -> StatusView:
        """One poll. Limited per account (``RateLimited``, 429): a poll runs the queue's
        script, so a client polling in a loop must not cost everyone Redis time."""
        sale = await self.cached(sale_id)
        limit = self.limits["poll"]
        if limit is not None:
            decision = await self.limiter.check(
                SCOPE_POLL, account_id, now_ms=self.clock(), limit=limit
            )
            if not decision.allowed:
                raise RateLimited(SCOPE_POLL, decision.retry_after_ms)
        if self.clock() >= sale.window_ends_ms:
            await self.ensure_drawn(sale)
        measured, measured_at = await self._measured_remaining(sale)
        now = self.clock()
        status = await self._queue_call(
            sale,
            lambda: self.queue.status(
                sale_id,
                account_id=account_id,
                now_ms=now,
                measured_remaining=measured,
                nonce_candidate=secrets.token_urlsafe(16),
                max_admit=_MAX_ADMIT_PER_CALL,
                measured_at_ms=measured_at,
            ),
        )
        if status is None:
            raise NotInQueue()
        if status.sold_out_now or (status.state == "sold_out" and not sale.sold_out_notified):
            self.notify_sold_out_soon(sale_id)
        token = None
        if status.state == "admitted":
            # Issued at the admission's start: every poll during the admission returns the
            # same token, and a new one only after the last was spent on a refused hold.
            token, _ = self.signer.issue(
                sale_id=sale_id,
                account_id=account_id,
                position=status.position,
                now_ms=status.deadline_ms - sale.admission_ttl_ms,
                ttl_ms=sale.admission_ttl_ms,
                nonce=status.nonce,
            )
        figures = estimate(
            state=status.state,
            position=status.position,
            admitted_upto=status.admitted_upto,
            live_admissions=status.live_admissions,
            remaining=status.remaining,
            served=status.served,
            lapsed=status.lapsed,
            elapsed_ms=now - sale.window_ends_ms,
        )
        return StatusView(sale, status, figures, token, now)

    async def finish(self, sale: Sale, account_id: str, outcome: str, places: int) -> None:
        """A token hold's outcome (see ``queue_finish.lua``)."""
        sold_out_now = await self._queue_call(
            sale,
            lambda: self.queue.finish(
                sale.sale_id,
                account_id=account_id,
                outcome=outcome,
                places=places,
                now_ms=self.clock(),
            ),
        )
        self._measured.pop(sale.sale_id, None)
        if sold_out_now:
            self.notify_sold_out_soon(sale.sale_id)

    # Sold out ---------------------------------------------------------------------------------
    def notify_sold_out_soon(self, sale_id: str) -> None:
        """Record a SOLD_OUT notification for everyone still waiting, in the background
        (status answers already say ``sold_out``); at most once per sale (Postgres)."""
        if sale_id in self._notifying:
            return
        self._notifying.add(sale_id)
        task = asyncio.create_task(self.notify_sold_out(sale_id))

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if t.cancelled() or t.exception() is not None:
                self._notifying.discard(sale_id)  # a later status call tries again

        self._tasks.add(task)
        task.add_done_callback(done)

    async def notify_sold_out(self, sale_id: str) -> int:
        """How many notifications were recorded now (0 if it was done before)."""
        accounts = await self.queue.waiting_accounts(sale_id)
        recorded = 0
        async with self.pool.acquire() as conn, conn.transaction():
            row = await sale_store.lock_sale(conn, sale_id)
            if row is None or row["sold_out_notified_at"] is not None:
                return 0
            at = from_ms(self.clock())
            for account in accounts:
                recorded += await record_notification(
                    conn,
                    account_id=account,
                    kind=NotificationKind.SOLD_OUT,
                    subject=f"sale:{sale_id}",
                    payload={"sale_id": sale_id, "waitlist": WAITLIST_PATH},
                    dedupe_key=f"sale:{sale_id}:sold_out:{account}",
                    at=at,
                )
            await sale_store.mark_sold_out_notified(conn, sale_id)
        return recorded

    # What the public checks -------------------------------------------------------------------
    async def draw_record(self, sale_id: str) -> dict[str, Any]:
        """Everything needed to recompute the order: the sale's audit export (commitment,
        joiners digest, seed) and the published joiners list."""
        sale = await self.get(sale_id)
        if self.clock() >= sale.window_ends_ms:
            await self.ensure_drawn(sale)
        async with self.pool.acquire() as conn:
            entries = await audit.export(conn, sale_id)
            seed = await conn.fetchval("SELECT seed FROM sales WHERE id = $1", sale_id)
            joiners = await sale_store.joiners(conn, sale_id) if seed is not None else []
        return {
            "rule": lottery.RULE,
            "sale_id": sale_id,
            "commitment": sale.commitment,
            "window_ends_ms": sale.window_ends_ms,
            "seed": seed,
            "joiners": joiners,
            "audit": {
                "format": "fairseat-audit-export/1",
                "rule": audit.RULE,
                "subject": sale_id,
                "entries": entries,
            },
        }


def _limit(per_minute: int, burst: int) -> Limit | None:
    """0 per minute switches a scope off."""
    if per_minute <= 0:
        return None
    return Limit(interval_ms=max(1, math.ceil(60_000 / per_minute)), burst=max(1, burst))


def release_payload(sale: Sale) -> dict[str, Any]:
    """The ``release`` audit entry of a queued sale: what is sold, when, and how people
    are admitted, fixed before anyone joins."""
    scope: dict[str, Any] = {"kind": sale.kind}
    if sale.kind == "slots":
        scope |= {"provider_id": sale.provider_id, "slot_ids": list(sale.slot_ids)}
    else:
        scope |= {"train_date": sale.train_date}
    return {
        "rule": RULE,
        "scope": scope,
        "stock": sale.stock,
        "release_ms": sale.release_ms,
        "window_ends_ms": sale.window_ends_ms,
        "ends_ms": sale.ends_ms,
        "admission": {
            "policy": "positions in draw order while admitted-but-unused < factor * remaining",
            "factor": sale.admit_factor,
            "admission_ttl_ms": sale.admission_ttl_ms,
        },
    }
