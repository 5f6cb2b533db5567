"""The live numbers an operator watches during a rush, sampled every few seconds.

One sampler runs in the background process (``fairseat serve``'s ``run_background``):
gauges read from Redis and Postgres must have one writer, or a multiprocess scrape would
mix stale copies (they use ``multiprocess_mode="mostrecent"``). Each pass:

- every queued sale that is open (or ended within the last hour): people waiting,
  admitted-but-unused places, the queue's remaining count, and its joins/admissions
  counters (they follow the totals the queue keeps in Redis);
- the watched units' remaining stock (slots: available places; a slot sale: the sum of
  its slots; a train run: per class, whole trip and the tightest segment);
- the waitlist: orders waiting by kind, fulfilled and ended counters (Postgres totals);
- a JSON snapshot with per-second rates (from the previous pass) for the operator page,
  ``GET /v1/operator/live`` (:mod:`reservation.api.operator_live`), kept in Redis.

Watched units: ``FAIRSEAT_WATCH`` first, then every open queued sale's inventory, at most
``FAIRSEAT_WATCH_MAX`` of them, so label sets stay bounded (docs/operations.md, Metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, multiprocess

from inventory.errors import InventoryError
from inventory.queue_keys import QueueKeys
from reservation.domain.clock import from_ms
from reservation.fairness.waiting_room_rules import Sale
from reservation.services import Services
from reservation.store import sales as sale_store

log = logging.getLogger(__name__)

SNAPSHOT_TTL_S = 120  # an older snapshot means no sampler runs: the route says so
RECENT_SALES_MS = 3_600_000  # a sale stays on the dashboard for an hour after it ends
SLOT_SPAN = "places"


@dataclass(frozen=True, slots=True)
class Unit:
    """A watched inventory unit: ``sale`` (a slot sale's slots together), ``slot`` or
    ``run`` (one seat class of a train run)."""

    kind: str
    ident: str
    seat_class: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.ident}"


def snapshot_key(services: Services) -> str:
    keys = services.keys
    return f"{keys.tag(keys.shard('live:snapshot'))}:live:snapshot"


def parse_watch(entries: Iterable[str]) -> list[tuple[str, str, str]]:
    """``sale:<id>``, ``slot:<id>``, ``run:<id>[/<class>]`` -> (kind, id, class or "")."""
    out = []
    for entry in entries:
        kind, _, ident = entry.partition(":")
        seat_class = ""
        if kind == "run":
            ident, _, seat_class = ident.partition("/")
        out.append((kind, ident, seat_class))
    return out


def _rate(now: float, before: float | None, seconds: float | None) -> float | None:
    if before is None or not seconds or seconds <= 0:
        return None
    return round(max(0.0, now - before) / seconds, 3)


class StockSampler:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.metrics = services.metrics
        self.queue_keys = QueueKeys(services.keys)
        # Last totals seen in Redis/Postgres, per counter label set: a counter follows
        # its total by the difference (a total that went down, e.g. a queue reopened after
        # a Redis loss, starts a new baseline; counters never go down).
        self._seen: dict[tuple[str, tuple[str, ...]], int] = {}
        self._gauge_labels: dict[str, set[tuple[str, ...]]] = {}
        self._previous: tuple[float, dict[str, Any]] | None = None

    # Reading ------------------------------------------------------------------------------
    async def _sales(self, now_ms: int) -> list[Sale]:
        s = self.services.settings
        explicit = [ident for kind, ident, _ in parse_watch(s.stock_watch) if kind == "sale"]
        async with self.services.pool.acquire() as conn:
            sales = await sale_store.sales_ending_after(conn, from_ms(now_ms - RECENT_SALES_MS))
            known = {sale.sale_id for sale in sales}
            for sale_id in explicit:
                if sale_id not in known:
                    sale = await sale_store.get_sale(conn, sale_id)
                    if sale is not None:
                        sales.append(sale)
        # Explicitly watched sales first, then open ones by release time.
        order = {sale_id: i for i, sale_id in enumerate(explicit)}
        sales.sort(key=lambda sale: (order.get(sale.sale_id, len(order)), sale.release_ms))
        return sales[: s.stock_watch_max]

    async def watched_units(self, sales: list[Sale], now_ms: int) -> list[Unit]:
        """FAIRSEAT_WATCH entries, then every open queued sale's inventory; capped."""
        s = self.services.settings
        units: list[Unit] = []
        runs: list[tuple[str, str]] = []  # (run id, class or "" for all classes)
        dates: list[dt.date] = []
        for kind, ident, seat_class in parse_watch(s.stock_watch):
            if kind == "run":
                runs.append((ident, seat_class))
            else:
                units.append(Unit(kind, ident))
        for sale in sales:
            if sale.ends_ms <= now_ms:
                continue
            if sale.kind == "slots":
                units.append(Unit("sale", sale.sale_id))
            elif sale.train_date:
                dates.append(dt.date.fromisoformat(sale.train_date))
        if runs or dates:
            async with self.services.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT r.id,"
                    " array_agg(DISTINCT cs.seat_class ORDER BY cs.seat_class) AS classes"
                    " FROM train_runs r JOIN trains t ON t.number = r.train_number"
                    " JOIN coach_sections cs ON cs.composition_id = t.composition_id"
                    " WHERE (r.id = ANY($1::text[]) OR r.service_date = ANY($2::date[]))"
                    " AND r.status = 'scheduled' AND r.seats_published_at IS NOT NULL"
                    " GROUP BY r.id, r.departs_at ORDER BY r.departs_at, r.id LIMIT $3",
                    [run for run, _ in runs],
                    dates,
                    s.stock_watch_max,
                )
            classes = {r["id"]: list(r["classes"]) for r in rows}
            wanted = {run: cls for run, cls in runs}
            # Explicit runs first (in the order given), then the sales' runs by departure.
            ordered = [run for run, _ in runs if run in classes]
            ordered += [run for run in classes if run not in wanted]
            for run in ordered:
                only = wanted.get(run, "")
                for seat_class in classes[run]:
                    if not only or only == seat_class:
                        units.append(Unit("run", run, seat_class))
        return list(dict.fromkeys(units))[: s.stock_watch_max]

    async def _queue_figures(self, sales: list[Sale], now_ms: int) -> list[dict[str, Any]]:
        if not sales:
            return []
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for sale in sales:
                k = self.queue_keys.sale(sale.sale_id)
                pipe.hmget(k.meta, "arrivals", "upto", "served", "lapsed", "remaining", "status")
                pipe.zcount(k.admitted, f"({now_ms}", "+inf")
            replies = await pipe.execute()
        out = []
        for i, sale in enumerate(sales):
            meta, live = replies[2 * i], replies[2 * i + 1]
            arrivals, upto, served, lapsed = (int(v or 0) for v in meta[:4])
            out.append(
                {
                    "sale_id": sale.sale_id,
                    "kind": sale.kind,
                    "release_at": from_ms(sale.release_ms).isoformat(),
                    "ends_at": from_ms(sale.ends_ms).isoformat(),
                    "open": sale.ends_ms > now_ms,
                    "in_redis": meta[4] is not None,
                    "status": _text(meta[5]) if meta[5] is not None else None,
                    "stock": sale.stock,
                    "joined": arrivals,
                    "admitted": upto,
                    "served": served,
                    "lapsed": lapsed,
                    "queue_waiting": max(0, arrivals - upto),
                    "admitted_unused": int(live),
                    "queue_remaining": int(meta[4]) if meta[4] is not None else None,
                }
            )
        return out

    async def _stock(self, units: list[Unit], sales: Mapping[str, Sale]) -> list[dict[str, Any]]:
        slot_ids: list[str] = []
        for u in units:
            if u.kind == "slot":
                slot_ids.append(u.ident)
            elif u.kind == "sale" and u.ident in sales:
                slot_ids.extend(sales[u.ident].slot_ids)
        available = await self.services.slots.available(slot_ids) if slot_ids else {}
        out: list[dict[str, Any]] = []
        for u in units:
            if u.kind == "run":
                try:
                    rem = await self.services.seats.remaining(u.ident, u.seat_class)
                except InventoryError:
                    continue  # not in the live inventory (not published, or being rebuilt)
                n = rem.nseg
                whole = rem[0, n]
                tightest = min(rem[a, a + 1] for a in range(n))
                out.append(_stock_row(u, "whole_trip", whole))
                out.append(_stock_row(u, "min_segment", tightest))
                continue
            if u.kind == "slot":
                ids = [u.ident]
            else:
                ids = list(sales[u.ident].slot_ids) if u.ident in sales else []
            values = [available.get(i) for i in ids]
            if not values or any(v is None for v in values):
                continue  # unknown unit, or not loaded in Redis
            out.append(_stock_row(u, SLOT_SPAN, sum(v or 0 for v in values)))
        return out

    async def _waitlist(self) -> dict[str, Any]:
        async with self.services.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT kind, state, coalesce(end_reason, '') AS reason, count(*) AS n"
                " FROM waitlist_orders GROUP BY kind, state, end_reason"
            )
        waiting = {"train": 0, "slot": 0}
        fulfilled = {"train": 0, "slot": 0}
        ended: dict[str, dict[str, int]] = {"train": {}, "slot": {}}
        for r in rows:
            kind, state, n = r["kind"], r["state"], int(r["n"])
            if state == "waiting":
                waiting[kind] += n
            elif state == "fulfilled":
                fulfilled[kind] += n
            else:
                reason = r["reason"] or state
                ended[kind][reason] = ended[kind].get(reason, 0) + n
        return {"waiting": waiting, "fulfilled": fulfilled, "ended": ended}

    def _totals(self) -> dict[str, float]:
        """Every process's hold/confirm/persister figures (the multiprocess files when
        ``fairseat serve`` forks, this process's registry otherwise)."""
        registry: Any = self.metrics.registry
        metrics_dir = self.services.settings.metrics_dir
        if metrics_dir is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
        totals = {
            "holds": 0.0,
            "confirms": 0.0,
            "persister_events": 0.0,
            "dead_letters": 0.0,
            "persister_lag_s": 0.0,
        }
        for family in registry.collect():
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                if name == "fairseat_holds_total" and labels.get("outcome") == "held":
                    totals["holds"] += value
                elif name == "fairseat_confirms_total" and labels.get("outcome") == "confirmed":
                    totals["confirms"] += value
                elif name == "fairseat_persister_events_total":
                    totals["persister_events"] += value
                elif name == "fairseat_persister_dead_letters_total":
                    totals["dead_letters"] += value
                elif name == "fairseat_persister_lag_seconds" and not math.isnan(value):
                    totals["persister_lag_s"] = max(totals["persister_lag_s"], value)
        return totals

    async def _dead_letters_waiting(self) -> int:
        """Entries in the dead-letter streams now (the counter only knows this run's)."""
        keys = self.services.keys
        async with self.services.redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.shard_count):
                pipe.xlen(keys.dead_letters(shard))
            return sum(int(n) for n in await pipe.execute())

    async def collect(self) -> dict[str, Any]:
        """One reading of everything, without touching the metrics (the operator route
        uses it when no sampler has published a snapshot)."""
        now_ms = self.services.clock()
        sales = await self._sales(now_ms)
        units = await self.watched_units(sales, now_ms)
        by_id = {sale.sale_id: sale for sale in sales}
        queues = await self._queue_figures(sales, now_ms)
        stock = await self._stock(units, by_id)
        for q in queues:
            q["remaining_stock"] = [row for row in stock if _belongs(row, by_id[q["sale_id"]])]
        return {
            "sampled_at": from_ms(now_ms).isoformat(),
            "sampled_at_ms": now_ms,
            "interval_s": None,
            "sales": queues,
            "stock": stock,
            "watched_units": len(units),
            "waitlist": await self._waitlist(),
            "totals": self._totals() | {"dead_letters_waiting": await self._dead_letters_waiting()},
        }

    # Publishing -------------------------------------------------------------------------
    def _follow(self, name: str, counter: Counter, labels: tuple[str, ...], total: int) -> None:
        key = (name, labels)
        before = self._seen.get(key, 0)
        if total > before:
            counter.labels(*labels).inc(total - before)
        else:
            counter.labels(*labels)  # the series exists from the first pass on
        self._seen[key] = total

    def _set_gauges(self, name: str, gauge: Any, values: dict[tuple[str, ...], float]) -> None:
        """Set this pass's label sets; retire the ones no longer watched (removed, or NaN
        in multiprocess mode, where a child cannot be removed from the shared files)."""
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        multiproc = self.services.settings.metrics_dir is not None
        for labels in self._gauge_labels.get(name, set()) - set(values):
            if multiproc:
                gauge.labels(*labels).set(math.nan)
            else:
                gauge.remove(*labels)
        self._gauge_labels[name] = set(values)

    def publish(self, snap: dict[str, Any]) -> None:
        m = self.metrics
        for q in snap["sales"]:
            sale = (q["sale_id"],)
            self._follow("joins", m.queue_joins, sale, q["joined"])
            self._follow("admissions", m.queue_admissions, sale, q["admitted"])
        self._set_gauges(
            "waiting", m.queue_waiting, {(q["sale_id"],): q["queue_waiting"] for q in snap["sales"]}
        )
        self._set_gauges(
            "unused",
            m.queue_admitted_unused,
            {(q["sale_id"],): q["admitted_unused"] for q in snap["sales"]},
        )
        self._set_gauges(
            "remaining",
            m.queue_remaining,
            {
                (q["sale_id"],): q["queue_remaining"]
                for q in snap["sales"]
                if q["queue_remaining"] is not None
            },
        )
        self._set_gauges(
            "stock",
            m.stock_remaining,
            {(r["unit"], r["seat_class"], r["span"]): r["remaining"] for r in snap["stock"]},
        )
        wl = snap["waitlist"]
        for kind, n in wl["waiting"].items():
            m.waitlist_waiting.labels(kind).set(n)
        for kind, n in wl["fulfilled"].items():
            self._follow("fulfilled", m.waitlist_fulfilled, (kind,), n)
        for kind, reasons in wl["ended"].items():
            for reason, n in reasons.items():
                self._follow("ended", m.waitlist_ended, (kind, reason), n)
        m.stock_watched.set(snap["watched_units"])
        m.sampled_at.set(snap["sampled_at_ms"] / 1000)

    def _with_rates(self, snap: dict[str, Any]) -> dict[str, Any]:
        """Per-second rates since the previous pass (None on the first)."""
        now = time.monotonic()
        before = self._previous
        seconds = now - before[0] if before else None
        old = before[1] if before else {"sales": [], "totals": {}}
        old_sales = {q["sale_id"]: q for q in old["sales"]}
        snap["interval_s"] = round(seconds, 3) if seconds else None
        for q in snap["sales"]:
            prev = old_sales.get(q["sale_id"], {})
            q["admission_rate_per_s"] = _rate(q["admitted"], prev.get("admitted"), seconds)
            q["join_rate_per_s"] = _rate(q["joined"], prev.get("joined"), seconds)
            q["holds_per_s"] = _rate(q["served"], prev.get("served"), seconds)
        totals = snap["totals"]
        for name in ("holds", "confirms", "persister_events"):
            totals[f"{name}_per_s"] = _rate(totals[name], old["totals"].get(name), seconds)
        self._previous = (now, snap)
        return snap

    async def sample(self) -> dict[str, Any]:
        """One pass: read, publish the metrics, store the operator snapshot."""
        snap = self._with_rates(await self.collect())
        self.publish(snap)
        await self.services.redis.set(
            snapshot_key(self.services), orjson.dumps(snap), ex=SNAPSHOT_TTL_S
        )
        return snap

    async def run(self, stop: asyncio.Event, interval_s: float = 5.0) -> None:
        while not stop.is_set():
            try:
                await self.sample()
            except Exception as exc:
                log.warning("stock sampler pass failed: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)


def _belongs(row: dict[str, Any], sale: Sale) -> bool:
    """A stock row of the sale's own inventory: its slots, or its date's runs (a run id
    ends with its service date, e.g. G1-20261126)."""
    if sale.kind == "slots":
        return bool(row["unit"] == f"sale:{sale.sale_id}")
    day = (sale.train_date or "").replace("-", "")
    return bool(day) and row["unit"].startswith("run:") and row["unit"].endswith(f"-{day}")


def _stock_row(unit: Unit, span: str, remaining: int) -> dict[str, Any]:
    return {"unit": unit.label, "seat_class": unit.seat_class, "span": span, "remaining": remaining}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_snapshot(services: Services) -> dict[str, Any] | None:
    raw = await services.redis.get(snapshot_key(services))
    if raw is None:
        return None
    snap: dict[str, Any] = orjson.loads(raw)
    return snap
