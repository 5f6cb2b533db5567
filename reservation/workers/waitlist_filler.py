"""The waitlist filler: freed places go to waiting orders, in line, before open sale.

One pass (batch -> idempotent writes -> acknowledge; safe to replay, safe to crash):
1. settle offers a crashed pass left (``waitlist_fulfil.settle_offer``; hospital standby
   places and vaccine series, ``*.settle_orphans``, on the first pass and every 120th);
2. end orders whose deadline passed (WAITLIST_ENDED, they leave their units);
3. for each shard with places in cooling: per unit, read the unit's generation, then the
   waiting orders (Postgres, in line); give pieces to the first orders they serve whole
   (``*_transfer``); put the pieces whose cooling ended and that nobody took back on sale
   with that generation (``*_uncool``: refused if an order was enrolled since, so it is
   seen next pass);
   hospital and vaccination pieces go to their domain's line first
   (``hospital_standby.offer_piece``, ``vaccine_waitlist.offer_piece``: their own rules,
   a hospital registration or a held vaccine series), then to generic orders;
4. for units with waiting orders, stock on open sale (newly released, or returned while
   nobody waited) is held for the first order it serves;
5. flag cancel -> rebook pairs of different people (``handoff_flags``, audited).

Only one filler works at a time (a Postgres advisory lock per pass): the line is global
and an order must never get two places from two shards at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from inventory.errors import InventoryError
from inventory.waitlist_engine import Piece
from inventory.waitlist_keys import slot_unit
from reservation.domain.clock import from_ms
from reservation.fairness import audit
from reservation.fairness.waitlist import SeatPiece, choose_pieces
from reservation.notifications.record import NotificationKind, record_notification
from reservation.services import Services
from reservation.store import waitlist as store
from reservation.workflows import hospital_standby, vaccine_waitlist
from reservation.workflows.slot_domains import ResourceDomains
from reservation.workflows.train_inventory import remaining, run_of
from reservation.workflows.waitlist_common import FILLER, freeing, leave_units
from reservation.workflows.waitlist_fulfil import fulfil_slot, fulfil_train, settle_offer

log = logging.getLogger("fairseat.waitlist")

LOCK_ID = 0x5741_4954  # "WAIT": one filler pass at a time across processes


@dataclass
class PassReport:
    fulfilled: int = 0
    released: int = 0
    ended: int = 0
    flagged: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class WaitlistFiller:
    services: Services
    shards: list[int]
    batch: int = 500
    flags_checked_until: dt.datetime | None = None
    # Every this many passes (and on the first), every waiting order is enrolled again on
    # its units: after a Redis loss, or a crash between an order's commit and its enrolment.
    reenroll_every: int = 120
    domains: ResourceDomains = field(default_factory=ResourceDomains)
    slow_every: int = 4
    passes: int = 0

    async def run_once(self) -> PassReport:
        report = PassReport()
        async with self.services.pool.acquire() as lock_conn:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_ID):
                return report
            try:
                await self._pass(report)
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)
        return report

    async def _pass(self, report: PassReport) -> None:
        async with self.services.pool.acquire() as conn:
            offers = await store.offered(conn)
        for order in offers:
            report.fulfilled += int(await settle_offer(self.services, order))
        report.ended += await self._end_due()
        report.ended += await hospital_standby.end_due(self.services, self.batch)
        report.ended += await vaccine_waitlist.end_due(self.services, self.batch)
        self.passes += 1
        if self.passes % self.reenroll_every == 1 or self.reenroll_every == 1:
            # Standby places and vaccine series a crash left given in Redis only: rare
            # (a crash is followed by a restart, whose first pass this is), and a join
            # over every waiting entry is not for every pass. Meanwhile a standby entry
            # gets no second place that department and day (its day gate counts the hold).
            report.fulfilled += await hospital_standby.settle_orphans(self.services)
            report.fulfilled += await vaccine_waitlist.settle_orphans(self.services)
            await self._reenroll()
            await hospital_standby.reenroll_all(self.services)
            await vaccine_waitlist.reenroll_all(self.services)
        wl = freeing(self.services)
        for shard in await wl.busy_shards(self.shards):
            await self._match_shard(shard, report)
        # Returned stock is held back in Lua; these two only need to be prompt, not
        # instant, and read Postgres more: every few passes (and on the first).
        if self.passes % self.slow_every == 1 or self.slow_every == 1:
            await self._match_open_stock(report)
            report.flagged += await self._flag_handoffs()

    # 2. deadlines ---------------------------------------------------------------------
    async def _end_due(self) -> int:
        now = from_ms(self.services.clock())
        async with self.services.pool.acquire() as conn:
            due = await store.due(conn, now, self.batch)
        ended = 0
        for order in due:
            async with self.services.pool.acquire() as conn, conn.transaction():
                if not await store.mark_ended(conn, order["id"], "ended", "deadline", now):
                    continue
                await record_notification(
                    conn,
                    account_id=order["account_id"],
                    kind=NotificationKind.WAITLIST_ENDED,
                    subject=order["id"],
                    payload={"order": order["id"], "reason": "deadline"},
                    dedupe_key=f"waitlist:{order['id']}:ended",
                    at=now,
                )
            await leave_units(self.services, order["id"])
            ended += 1
        return ended

    async def _reenroll(self) -> None:
        async with self.services.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT c.order_id, c.unit FROM waitlist_choices c"
                " JOIN waitlist_orders o ON o.id = c.order_id WHERE o.state = 'waiting'"
            )
        wl = freeing(self.services)
        for row in rows:
            await wl.enroll(row["unit"], row["order_id"])

    # 3. pieces in cooling -------------------------------------------------------------
    async def _match_shard(self, shard: int, report: PassReport) -> None:
        wl = freeing(self.services)
        by_unit: dict[str, list[Piece]] = defaultdict(list)
        now = self.services.clock()
        for piece in await wl.pieces(shard, self.batch):
            if piece.reason == "released" and piece.until_ms > now:
                continue  # new stock before its release time: nobody may have it yet
            if piece.kind == "seat":
                by_unit[piece.seat_unit].append(piece)
            else:
                try:
                    meta = await self.services.slots.slot_meta(piece.slot_id)
                except InventoryError:
                    # The slot left the live inventory (retention ended): no stock to
                    # give or to free, only the piece's own entries to drop.
                    await wl.drop_piece(piece)
                    continue
                by_unit[slot_unit(meta.resource_id, meta.day)].append(piece)
        for unit, pieces in by_unit.items():
            try:
                await self._match_unit(unit, pieces, report)
            except InventoryError as exc:
                report.notes.append(f"{unit}: {exc.code}")

    async def _match_unit(self, unit: str, pieces: list[Piece], report: PassReport) -> None:
        wl = freeing(self.services)
        # The generation first, then the line: an order enrolled after this read changes
        # the generation, so the uncool below is refused and the order is seen next pass.
        gen = await wl.generation(unit)
        left = pieces
        if unit.startswith("res:"):
            # Hospital and vaccination places: the domain's own line first, through its
            # own rules (a generic order can never be for them: the routes refuse it).
            domain = await self.domains.domain_of(self.services, unit.split(":")[1])
            if domain != "generic":
                left = await self._offer_domain(domain, left, report)
        for _ in range(5):
            async with self.services.pool.acquire() as conn:
                line = await store.waiting_on_unit(conn, unit, self.batch)
            left, served = await self._offer(line, left)
            report.fulfilled += served
            if not served or not unit.startswith("run:"):
                break
            # What a sub-trip left of a seat is a new piece: it may serve the next order.
            left = [
                p
                for p in await wl.pieces(pieces[0].shard, self.batch)
                if p.kind == "seat" and p.seat_unit == unit
            ]
        now = self.services.clock()
        for piece in left:
            if piece.until_ms > now:
                continue
            if piece.kind == "slot":
                code = await wl.uncool_slot(
                    self.services.slots, piece.piece_id, piece.slot_id, now_ms=now, gen=gen
                )
            else:
                code = await wl.uncool_seat(
                    self.services.seats,
                    piece.piece_id,
                    (piece.run_id, piece.seat_class),
                    now_ms=now,
                    gen=gen,
                )
            report.released += int(code == 0)

    async def _offer_domain(
        self, domain: str, pieces: list[Piece], report: PassReport
    ) -> list[Piece]:
        offer = (
            hospital_standby.offer_piece if domain == "hospital" else vaccine_waitlist.offer_piece
        )
        left = []
        for piece in pieces:
            if await offer(self.services, slot_id=piece.slot_id, piece_id=piece.piece_id):
                report.fulfilled += 1
            else:
                left.append(piece)
        return left

    async def _offer(
        self, line: list[dict[str, Any]], pieces: list[Piece]
    ) -> tuple[list[Piece], int]:
        """Give pieces to the orders of a line, in order; (pieces left, orders served)."""
        left, served = list(pieces), 0
        for order in line:
            if not left:
                break
            if order["kind"] == "slot":
                piece = left[0]
                if await fulfil_slot(
                    self.services, order, slot_id=piece.slot_id, piece_id=piece.piece_id
                ):
                    left.pop(0)
                    served += 1
                continue
            chosen = choose_pieces(
                [SeatPiece(p.piece_id, p.a, p.b, p.ordinal) for p in left],
                int(order["seg_from"]),
                int(order["seg_to"]),
                len(order["people"]),
            )
            if chosen is None:
                continue  # this order needs more or other seats: the next one may fit
            if await fulfil_train(self.services, order, pieces=chosen):
                left = [p for p in left if p.piece_id not in chosen]
                served += 1
        return left, served

    # 4. stock on open sale where orders wait ------------------------------------------
    async def _match_open_stock(self, report: PassReport) -> None:
        async with self.services.pool.acquire() as conn:
            units = await store.waited_units(conn, self.batch)
        for unit in units:
            try:
                if unit.startswith("run:"):
                    report.fulfilled += await self._open_seats(unit)
                else:
                    report.fulfilled += await self._open_slots(unit)
            except InventoryError as exc:
                report.notes.append(f"{unit}: {exc.code}")

    async def _open_seats(self, unit: str) -> int:
        async with self.services.pool.acquire() as conn:
            line = await store.waiting_on_unit(conn, unit, self.batch)
        if not line:
            return 0
        run = await run_of(self.services, line[0]["run_id"])
        done = 0
        for order in line:
            left = (await remaining(self.services, run, order["seat_class"]))[
                int(order["seg_from"]), int(order["seg_to"])
            ]
            if left < len(order["people"]):
                continue
            if await fulfil_train(self.services, order, pieces=None):
                done += 1
        return done

    async def _open_slots(self, unit: str) -> int:
        async with self.services.pool.acquire() as conn:
            line = await store.waiting_on_unit(conn, unit, self.batch)
            if not line:
                return 0
            slots = await conn.fetch(
                "SELECT id FROM slots WHERE resource_id = $1 AND day = $2 AND status = 'open'"
                " ORDER BY starts_at",
                line[0]["resource_id"],
                line[0]["day"],
            )
        ids = [s["id"] for s in slots]
        available = await self.services.slots.available(ids)
        open_ids = [sid for sid in ids if available.get(sid)]
        done = 0
        for order in line:
            for slot_id in open_ids:
                if await fulfil_slot(self.services, order, slot_id=slot_id, piece_id=""):
                    done += 1
                    break
        return done

    # 5. handoff flags -----------------------------------------------------------------
    async def _flag_handoffs(self) -> int:
        now = from_ms(self.services.clock())
        window = dt.timedelta(milliseconds=self.services.settings.handoff_flag_window_ms)
        # Every pass looks back one window past what it saw last: a pair is complete once
        # the rebook happened, at most one window after the cancel.
        since = (self.flags_checked_until or now) - 2 * window
        async with self.services.pool.acquire() as conn, conn.transaction():
            flags = await store.flag_slot_rebooks(conn, since, window, now)
            flags += await store.flag_seat_rebooks(conn, since, window, now)
            for flag in flags:
                await audit.append(
                    conn,
                    audit.Kind.CANCELLATION,
                    f"handoff:{flag['object']}",
                    FILLER,
                    {
                        "flag": flag["id"],
                        "kind": flag["kind"],
                        "object": flag["object"],
                        "cancelled": flag["cancelled_id"],
                        "booked": flag["booked_id"],
                        "gap_ms": flag["gap_ms"],
                    },
                    at=now,
                )
        self.flags_checked_until = now
        return len(flags)

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("waitlist filler pass failed: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
