"""A citizen holds seats for 1 to 5 passengers of their list on one train run.

Checks, in order (each refusal changes nothing): the party (size, duplicates); a retry of
an existing order is answered with that order; the run is on sale for the boarding stop;
every passenger is on the account's list; the account's cancellations today; no passenger
travels at an overlapping time (live tickets in Postgres, times from the timetable); the
account-wide cap of unpaid holds (its own shard); then one Lua call holds every seat or
none. The held tickets are written to Postgres before the answer, with the fare.

The payment deadline is 30 minutes, 10 when the train leaves within 2 hours, and never
after departure. The hold id is derived from HMAC(secret, account | Idempotency-Key), so a
retried request names the same hold and the inventory answers it as a replay.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from inventory.errors import InventoryError
from inventory.seat_engine import HoldInfo, SeatHold
from reservation.domain.clock import CHINA, from_ms, local_day
from reservation.domain.ticket_rules import (
    TicketRuleError,
    Trip,
    check_cancellation_limit,
    check_no_overlap,
    check_party,
    china_day_bounds,
)
from reservation.domain.trains import TrainRun
from reservation.errors import NotFound, ValidationFailed
from reservation.services import Services
from reservation.store import bookings as booking_store
from reservation.store import passengers as passenger_store
from reservation.workflows.epoch_fence import write_epoch
from reservation.workflows.fairness_gate import fairness_gate
from reservation.workflows.train_inventory import (
    ensure_run_loaded,
    get_run,
    require_on_sale,
    resolve_station,
    run_of,
    seat_maps,
)
from reservation.workflows.train_orders import (
    UnknownPassenger,
    config,
    engine,
    hold_deadline_ms,
    live_hold,
    order_key,
    price_fen,
    rows_from_hold,
    rule_refusal,
    write_rows,
)


@dataclass(frozen=True, slots=True)
class HeldOrder:
    hold: SeatHold
    price_fen: int  # per ticket


async def trip_of(
    services: Services, run_id: str, origin: str, destination: str
) -> tuple[TrainRun, str, int, int]:
    """The run, its status and the segments between two stations (codes or names)."""
    run, status = await get_run(services, run_id)
    # Codes of the train's own stops need no lookup (clients send codes; a code match is
    # what the lookup would prefer anyway); names and other stations are looked up.
    a_code, b_code = _stop_code(run, origin), _stop_code(run, destination)
    if a_code is None or b_code is None:
        async with services.pool.acquire() as conn:
            a_code = a_code or (await resolve_station(conn, origin, "from")).code
            b_code = b_code or (await resolve_station(conn, destination, "to")).code
    trip = run.train.segment(a_code, b_code)
    if trip is None:
        raise ValidationFailed(
            f"Train {run.train.number} does not run from {origin} to {destination}.",
            errors=[{"field": "to", "message": "not served after 'from' by this train"}],
        )
    return run, status, trip[0], trip[1]


def _stop_code(run: TrainRun, ref: str) -> str | None:
    code = ref.upper()
    return code if run.train.index_of(code) is not None else None


async def check_class(services: Services, run: TrainRun, seat_class: str) -> None:
    if seat_class not in await seat_maps(services, run.train.composition_id):
        raise ValidationFailed(
            errors=[{"field": "seat_class", "message": f"not on train {run.train.number}"}]
        )


def trip(run: TrainRun, a: int, b: int) -> Trip:
    departs, arrives = run.departure_at(a), run.arrival_at(b)
    assert departs is not None and arrives is not None  # a < b within the stops
    return Trip(run.run_id, departs, arrives)


async def check_overlaps(
    services: Services,
    people: Sequence[str],
    new_trip: Trip,
    *,
    ignore_holds: Collection[str] = (),
    labels: Sequence[str] = (),
) -> None:
    """No passenger's live trip (held or confirmed, any account) overlaps ``new_trip``.
    ``labels`` name the people in the refusal (passenger ids), never their ID HMACs. For
    the rule to hold under concurrency, check, hold and write the new tickets under
    ``services.gate.people.holding(people)``."""
    async with services.pool.acquire() as conn:
        live = await booking_store.live_tickets_of_people(conn, people)
    runs: dict[str, TrainRun] = {}
    by_person: dict[str, list[Trip]] = {}
    for row in live:
        if row["hold_id"] in ignore_holds:
            continue
        run = runs.get(row["run_id"])
        if run is None:
            run = runs[row["run_id"]] = await run_of(services, row["run_id"])
        by_person.setdefault(row["person_hmac"], []).append(
            trip(run, row["seg_from"], row["seg_to"])
        )
    for i, person in enumerate(people):
        label = labels[i] if i < len(labels) else ""
        try:
            check_no_overlap(label, new_trip, by_person.get(person, []))
        except TicketRuleError as exc:
            raise rule_refusal(exc) from None


async def hold_tickets(
    services: Services,
    *,
    account_id: str,
    run_id: str,
    origin: str,
    destination: str,
    seat_class: str,
    passenger_ids: Sequence[str],
    wish: str = "",
    idempotency_key: str | None,
    client_address: str = "",
    queue_token: str | None = None,
) -> HeldOrder:
    cfg = config(services)
    try:
        check_party(passenger_ids, cfg.rules)
    except TicketRuleError as exc:
        raise rule_refusal(exc) from None
    seats = engine(services)
    run, status, a, b = await trip_of(services, run_id, origin, destination)
    await check_class(services, run, seat_class)
    price = price_fen(run, seat_class, a, b)
    key = order_key(services, account_id, idempotency_key or secrets.token_hex(16), "order")
    hold_id = seats.keys.hold_id(run.run_id, account_id, key)
    now = services.clock()

    epoch = await write_epoch(services)  # before anything is read from Redis
    # A retry of an order that exists is answered with it, whatever happened since.
    try:
        existing = await live_hold(services, account_id, hold_id)
    except NotFound:
        existing = None
    if existing is None:
        require_on_sale(services, run, a, status)
        async with services.pool.acquire() as conn:
            people = await passenger_store.person_hmacs(conn, account_id, list(passenger_ids))
            if len(people) < len(passenger_ids):
                # The holder joins their own list lazily (ensure_holder): only a miss can
                # be that entry, so the write is not paid on every order.
                await passenger_store.ensure_holder(conn, account_id, local_day(from_ms(now)))
                people = await passenger_store.person_hmacs(conn, account_id, list(passenger_ids))
            cancelled = await booking_store.unpaid_cancellation_times(
                conn, account_id, china_day_bounds(from_ms(now))[0]
            )
        missing = [p for p in passenger_ids if p not in people]
        if missing:
            raise UnknownPassenger(passenger_ids=missing)
        try:
            check_cancellation_limit(cancelled, from_ms(now), cfg.rules)
        except TicketRuleError as exc:
            raise rule_refusal(exc) from None
        persons = [people[p] for p in passenger_ids]
        # --- fairness (issue 5): rate limits and queue tokens, before any stock is touched
        boarding = run.departure_at(a)
        assert boarding is not None
        gate = await fairness_gate(
            services,
            account_id=account_id,
            persons=persons,
            client_address=client_address,
            queue_token=queue_token,
            sale=await services.waiting_room.sale_for_train(boarding.astimezone(CHINA).date()),
        )
        departs = run.departure_at(a)
        assert departs is not None
        deadline = hold_deadline_ms(cfg, now, departs)
        await ensure_run_loaded(services, run)
        # Check, hold and write as one step per person (see PersonLocks).
        async with services.gate.people.holding(persons, owner=hold_id):
            # Its own tickets do not count: a retry after Redis lost the hold finds them.
            await check_overlaps(
                services,
                persons,
                trip(run, a, b),
                ignore_holds=(hold_id,),
                labels=passenger_ids,
            )
            counted = await services.gate.reserve(
                account_id=account_id,
                hold_id=hold_id,
                now_ms=now,
                deadline_ms=deadline,
                cap=services.settings.max_live_holds_per_account,
            )
            try:
                held = await seats.hold(
                    account_id,
                    run.run_id,
                    seat_class,
                    a,
                    b,
                    persons,
                    idempotency_key=key,
                    wish=wish,
                    deadline_ms=deadline,
                    now_ms=now,
                )
            except BaseException as exc:
                if counted:
                    await services.gate.release(account_id=account_id, hold_id=hold_id)
                if isinstance(exc, InventoryError):
                    services.metrics.holds.labels("seat", exc.code).inc()
                    await gate.refused(exc)
                raise
            services.metrics.holds.labels("seat", "replay" if held.replayed else "held").inc()
            await gate.held(len(passenger_ids), replay=held.replayed)
            # A new hold is known in full from the call and its answer (what seat_hold
            # wrote); a replay's record is read back (a concurrent twin made it).
            existing = (
                await live_hold(services, account_id, hold_id)
                if held.replayed
                else HoldInfo(
                    hold_id=held.hold_id,
                    account_id=account_id,
                    run_id=run.run_id,
                    seat_class=seat_class,
                    segments=(a, b),
                    seats=held.seats,
                    passengers=tuple(persons),
                    state="held",
                    deadline_ms=held.deadline_ms,
                    change_of="",
                    changed_to="",
                )
            )
            # The held tickets (with their fare) are in Postgres before the citizen hears
            # of them and before the lock goes: the overlap rule and the order list read
            # them. Forward-only, so a replay is harmless.
            rows = rows_from_hold(services, existing, "held", at_ms=now, price=price)
            await write_rows(services, rows, epoch=epoch)
        return HeldOrder(held, price)
    held = SeatHold(
        hold_id=existing.hold_id,
        run_id=existing.run_id,
        seat_class=existing.seat_class,
        seats=existing.seats,
        segments=existing.segments,
        deadline_ms=existing.deadline_ms,
        wish_met=False,
        state=existing.state,
        replayed=True,
    )
    rows = rows_from_hold(services, existing, "held", at_ms=now, price=price)
    await write_rows(services, rows, epoch=epoch)
    return HeldOrder(held, price)
