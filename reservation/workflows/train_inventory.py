"""Train runs on the live inventory: lazy seat-map loading, 余票 with a short cache, search.

Why lazy: about 100 runs a day over a 15-day horizon are ~1,500 seat maps of ~600 seats;
most runs are never looked at before their last few days. A run's map is published to Redis
the first time anyone searches it, reads its 余票 or holds on it (:func:`ensure_run_loaded`).
A process remembers which runs it has seen loaded, so a warm run costs nothing more.

Always: a map is published as "every seat free" only for a run never published before
(``train_runs.seats_published_at`` is NULL) with no live ticket in Postgres, and only while
the shard's epoch marker is the one Postgres expects (``seat_load`` checks it: after a Redis
loss it refuses with ``sales_closed``). For a run published once, a map missing from
Redis means Redis lost data: that run's sales are closed (503 ``sales_closed``) until the
inventory is rebuilt from Postgres (its seat maps carry every held and confirmed ticket's
segments, see ``rebuild_seats``), never silently republished empty (that would sell sold
seats again). Publishing is idempotent (``SeatEngine.publish`` answers False when the same
map is there), so two processes loading one run at once is harmless.

余票 is exact when computed (one HGETALL per run and class) and reused for
``FAIRSEAT_TRAIN_CACHE_MS`` (default 2 s) within a process: the query flood at a sale
opening reads memory, not Redis.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from inventory.seat_engine import SeatEngine
from inventory.seat_model import SeatSpec
from inventory.segments import Remaining
from reservation.domain.clock import CHINA, from_ms
from reservation.domain.fares import fare
from reservation.domain.sale_window import Refusal, SaleWindow, parse_release
from reservation.domain.trains import Composition, Station, Train, TrainRun
from reservation.errors import (
    Closed,
    FairseatError,
    NotFound,
    NotReleased,
    SalesClosed,
    ValidationFailed,
)
from reservation.services import Services
from reservation.store import inventory_state
from reservation.store import timetable as store
from reservation.ttl_cache import TtlCache

# --- errors (the API answers them as 422 with the usual fields.errors list) -------------


class UnknownStation(ValidationFailed):
    code = "unknown_station"


class SameStation(ValidationFailed):
    code = "same_station"


class OutsideSaleHorizon(ValidationFailed):
    code = "outside_sale_horizon"


class TrainDeparted(FairseatError):
    code = "departed"
    http_status = 409
    default_message = "The train has left the boarding station."


# --- per-process state -------------------------------------------------------------------


class TrainInventory:
    """What one process remembers about trains: which runs are loaded, timetables (never
    change once imported, so cached for good), and the short 余票/search caches."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        # The process's one seat engine: it carries the epoch guard (install_epoch_guard).
        self.engine: SeatEngine = services.seats
        self.window = SaleWindow(
            settings.train_sale_days, parse_release(settings.train_release_time)
        )
        self.loaded: set[str] = set()
        self.trains: dict[str, Train] = {}
        self.runs: dict[str, TrainRun] = {}  # run id -> its train and date (run_of)
        self.compositions: dict[str, Composition] = {}
        self.seat_maps: dict[str, dict[str, list[SeatSpec]]] = {}
        self.loading: dict[str, asyncio.Future[set[str]]] = {}  # run id -> its load
        self.materialized: set[dt.date] = set()
        self.remaining_cache = TtlCache(settings.train_cache_ms / 1000)
        self.search_cache = TtlCache(settings.train_cache_ms / 1000)


# Keyed by the Services object (unhashable, so by id, checked through a weak reference):
# every app, CLI command and test gets its own state without a field on Services.
_INVENTORIES: dict[int, tuple[weakref.ref[Services], TrainInventory]] = {}


def inventory(services: Services) -> TrainInventory:
    """The TrainInventory of these services (one per process and Services object)."""
    entry = _INVENTORIES.get(id(services))
    if entry is not None and entry[0]() is services:
        return entry[1]
    found = TrainInventory(services)
    key = id(services)
    _INVENTORIES[key] = (weakref.ref(services, lambda _: _INVENTORIES.pop(key, None)), found)
    return found


# --- timetables --------------------------------------------------------------------------


async def trains_by_number(services: Services, numbers: set[str]) -> dict[str, Train]:
    inv = inventory(services)
    missing = numbers - inv.trains.keys()
    if missing:
        async with services.pool.acquire() as conn:
            inv.trains.update(await store.load_trains(conn, missing))
    return {n: inv.trains[n] for n in numbers if n in inv.trains}


async def composition(services: Services, composition_id: str) -> Composition:
    inv = inventory(services)
    found = inv.compositions.get(composition_id)
    if found is None:
        async with services.pool.acquire() as conn:
            loaded = await store.load_compositions(conn, [composition_id])
        found = inv.compositions[composition_id] = loaded[composition_id]
    return found


async def seat_maps(services: Services, composition_id: str) -> dict[str, list[SeatSpec]]:
    inv = inventory(services)
    found = inv.seat_maps.get(composition_id)
    if found is None:
        found = (await composition(services, composition_id)).seat_maps()
        inv.seat_maps[composition_id] = found
    return found


async def get_run(services: Services, run_id: str) -> tuple[TrainRun, str]:
    """A run and its status, read now (sale decisions need it fresh); NotFound for an
    unknown id."""
    async with services.pool.acquire() as conn:
        row = await store.get_run(conn, run_id)
    if row is None:
        raise NotFound("No such train run.")
    train = (await trains_by_number(services, {row["train_number"]}))[row["train_number"]]
    run = TrainRun(row["id"], train, row["service_date"])
    _remember(inventory(services).runs, run)
    return run, row["status"]


def _remember(runs: dict[str, TrainRun], run: TrainRun) -> None:
    if len(runs) >= 100_000:
        runs.clear()  # bounded; a miss costs one read
    runs[run.run_id] = run


async def run_of(services: Services, run_id: str) -> TrainRun:
    """A run's train and date without its status: these never change (a timetable is
    never changed once imported), so they are remembered for good and views, payments
    and refunds do not read Postgres for them on every ticket."""
    found = inventory(services).runs.get(run_id)
    if found is None:
        found, _ = await get_run(services, run_id)  # remembers it
    return found


# --- lazy loading ------------------------------------------------------------------------


async def ensure_runs_loaded(
    services: Services, runs: list[TrainRun], *, raise_lost: bool = True
) -> set[str]:
    """Make sure these runs' seat maps are in Redis (see the module doc). Runs whose map
    was lost raise SalesClosed, or with ``raise_lost=False`` are returned.

    At a sale opening thousands of requests ask for the same cold run at once: within a
    process they wait for one load instead of each sending the whole seat map."""
    inv = inventory(services)
    cold = {r.run_id: r for r in runs if r.run_id not in inv.loaded}
    if not cold:
        return set()
    pending = {id(f): f for rid, f in inv.loading.items() if rid in cold}
    mine = [r for rid, r in cold.items() if rid not in inv.loading]
    if mine:
        load = asyncio.ensure_future(_load(services, mine))
        for r in mine:
            inv.loading[r.run_id] = load

        def done(_: object) -> None:
            for r in mine:
                inv.loading.pop(r.run_id, None)

        load.add_done_callback(done)
        pending[id(load)] = load
    lost: set[str] = set()
    for future in pending.values():
        # Shielded: a caller that goes away must not cancel a load others wait for.
        lost |= await asyncio.shield(future)
    lost &= cold.keys()
    if lost and raise_lost:
        raise SalesClosed(runs=sorted(lost))
    return lost


async def _load(services: Services, runs: list[TrainRun]) -> set[str]:
    """Publish never-published runs, check published ones; returns the lost runs."""
    inv = inventory(services)
    async with services.pool.acquire() as conn:
        published = await store.published_runs(conn, [r.run_id for r in runs])
        # A run with live tickets in Postgres has sold seats, whatever its flag says: its
        # map comes back only with them (the rebuild), never as "every seat free".
        sold = await inventory_state.runs_with_live_tickets(
            conn, [r.run_id for r in runs if r.run_id not in published]
        )
    fresh = [r for r in runs if r.run_id not in published and r.run_id not in sold]
    maps = {r.run_id: await seat_maps(services, r.train.composition_id) for r in runs}
    # Runs published before: their maps must be there; check without writing anything.
    checked = [(r, cls) for r in runs if r.run_id in published for cls in maps[r.run_id]]
    present: list[Any] = []
    if checked:
        async with services.redis.pipeline(transaction=False) as pipe:
            for r, cls in checked:
                pipe.exists(inv.engine.unit(r.run_id, cls).meta)
            present = await pipe.execute()
    lost = {r.run_id for (r, _), ok in zip(checked, present, strict=True) if not ok} | sold

    async def publish(run: TrainRun) -> bool:
        # Guarded (seat_load checks the shard's epoch): while sales are closed nothing is
        # published, so a map can only be empty on a Redis that Postgres vouches for.
        try:
            for cls, seats in maps[run.run_id].items():
                await inv.engine.publish(run.run_id, cls, run.train.nseg, seats)
        except SalesClosed:
            return False
        return True

    done = await asyncio.gather(*(publish(r) for r in fresh))
    lost |= {r.run_id for r, ok in zip(fresh, done, strict=True) if not ok}
    fresh = [r for r, ok in zip(fresh, done, strict=True) if ok]
    if fresh:
        async with services.pool.acquire() as conn:
            await store.mark_published(conn, [r.run_id for r in fresh])
    inv.loaded.update(r.run_id for r in runs if r.run_id not in lost)
    return lost


async def ensure_run_loaded(services: Services, run: TrainRun) -> None:
    await ensure_runs_loaded(services, [run])


async def remaining(services: Services, run: TrainRun, seat_class: str) -> Remaining:
    """余票 of a run and class for every trip; exact when computed, then cached briefly."""
    inv = inventory(services)
    key = (run.run_id, seat_class)
    cached: Remaining | None = inv.remaining_cache.get(key)
    if cached is not None:
        return cached
    await ensure_run_loaded(services, run)
    fresh = await inv.engine.remaining(run.run_id, seat_class)
    inv.remaining_cache.put(key, fresh)
    return fresh


async def remaining_all_classes(services: Services, run: TrainRun) -> dict[str, Remaining]:
    classes = list(await seat_maps(services, run.train.composition_id))
    found = await asyncio.gather(*(remaining(services, run, cls) for cls in classes))
    return dict(zip(classes, found, strict=True))


# --- search ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassOffer:
    seat_class: str
    remaining: int | None  # None: not on sale, so not looked up
    fare_cny: Decimal


@dataclass(frozen=True, slots=True)
class TripOffer:
    run: TrainRun
    a: int
    b: int
    status: str
    refusal: str | None  # why it cannot be bought now (departed, cancelled, ...)
    classes: tuple[ClassOffer, ...]


@dataclass(frozen=True, slots=True)
class SearchResult:
    origin: Station
    destination: Station
    day: dt.date
    offers: tuple[TripOffer, ...]


async def resolve_station(conn: Any, ref: str, field_name: str) -> Station:
    station = await store.find_station(conn, ref)
    if station is None:
        raise UnknownStation(
            f"No station {ref!r}.", errors=[{"field": field_name, "message": "unknown station"}]
        )
    return station


def check_date(window: SaleWindow, day: dt.date, now: dt.datetime) -> None:
    refusal = window.date_refusal(day, now)
    if refusal is None:
        return
    first, last = window.first_date(now), window.last_date(now)
    extra = ""
    if refusal is Refusal.NOT_RELEASED:
        extra = f"; tickets for {day} go on sale at {window.release_at(day).isoformat()}"
    raise OutsideSaleHorizon(
        f"Tickets are on sale for {first} to {last}{extra}.",
        errors=[{"field": "date", "message": f"between {first} and {last}"}],
    )


async def search(
    services: Services, origin_ref: str, destination_ref: str, day: dt.date
) -> SearchResult:
    inv = inventory(services)
    now = from_ms(services.clock())
    async with services.pool.acquire() as conn:
        origin = await resolve_station(conn, origin_ref, "from")
        destination = await resolve_station(conn, destination_ref, "to")
        if origin.code == destination.code:
            raise SameStation(
                "Origin and destination are the same station.",
                errors=[{"field": "to", "message": "differs from 'from'"}],
            )
        check_date(inv.window, day, now)
        key = (origin.code, destination.code, day)
        cached: SearchResult | None = inv.search_cache.get(key)
        if cached is not None:
            return cached
        if day not in inv.materialized:
            # Overnight runs of up to two days earlier may board on ``day``.
            await store.materialize_runs(conn, day - dt.timedelta(days=2), day)
            inv.materialized.add(day)
        rows = await store.runs_between(conn, origin.code, destination.code, day)
    trains = await trains_by_number(services, {r["train_number"] for r in rows})
    candidates: list[tuple[TrainRun, int, int, str, str | None]] = []
    for row in rows:
        run = TrainRun(row["id"], trains[row["train_number"]], row["service_date"])
        trip = run.train.segment(origin.code, destination.code)
        assert trip is not None  # the query matched both stops in this order
        departure = run.departure_at(trip[0])
        assert departure is not None
        refusal: str | None = "cancelled" if row["status"] == "cancelled" else None
        if refusal is None:
            why = inv.window.trip_refusal(departure, now)
            refusal = why.value if why is not None else None
        candidates.append((run, trip[0], trip[1], row["status"], refusal))
    lost = await ensure_runs_loaded(
        services, [c[0] for c in candidates if c[4] is None], raise_lost=False
    )
    # One run's lost map closes that run's sales only; the rest of the answer stands.
    candidates = [
        (run, a, b, status, "sales_closed" if run.run_id in lost else refusal)
        for run, a, b, status, refusal in candidates
    ]
    offers = await asyncio.gather(*(_offer(services, *c) for c in candidates))
    result = SearchResult(
        origin,
        destination,
        day,
        tuple(sorted(offers, key=_departure_key)),
    )
    inv.search_cache.put(key, result)
    return result


async def _offer(
    services: Services, run: TrainRun, a: int, b: int, status: str, refusal: str | None
) -> TripOffer:
    km = run.train.distance_km(a, b)
    classes = []
    for cls in await seat_maps(services, run.train.composition_id):
        left = None if refusal is not None else (await remaining(services, run, cls))[a, b]
        classes.append(ClassOffer(cls, left, fare(cls, km, run.train.kind)))
    return TripOffer(run, a, b, status, refusal, tuple(classes))


def check_run_in_window(services: Services, run: TrainRun) -> None:
    """Runs outside the sale window are not loaded (their 余票 is of no use to anyone);
    yesterday's runs still count, an overnight one may still be boarding."""
    window = inventory(services).window
    now = from_ms(services.clock())
    first = window.first_date(now) - dt.timedelta(days=1)
    if not first <= run.service_date <= window.last_date(now):
        raise OutsideSaleHorizon(
            f"Run {run.run_id} is not within the sale window.",
            errors=[{"field": "run_id", "message": f"service date {run.service_date}"}],
        )


def require_on_sale(services: Services, run: TrainRun, a: int, status: str = "scheduled") -> None:
    """The sale rules for a trip boarding at stop ``a``, for the hold path: raises
    Closed (cancelled run), TrainDeparted or NotReleased (with ``release_at``)."""
    if status != "scheduled":
        raise Closed("This train run is cancelled.")
    departure = run.departure_at(a)
    if departure is None:
        raise ValidationFailed(errors=[{"field": "from", "message": "the terminus"}])
    window = inventory(services).window
    refusal = window.trip_refusal(departure, from_ms(services.clock()))
    if refusal is Refusal.DEPARTED or refusal is Refusal.PAST:
        raise TrainDeparted(run_id=run.run_id)
    if refusal is Refusal.NOT_RELEASED:
        release = window.release_at(departure.astimezone(CHINA).date())
        raise NotReleased(release_at=release.isoformat())


def _departure_key(offer: TripOffer) -> tuple[dt.datetime, str]:
    departure = offer.run.departure_at(offer.a)
    assert departure is not None
    return departure, offer.run.train.number
