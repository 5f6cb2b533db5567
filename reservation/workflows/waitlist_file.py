"""A citizen files a waitlist order (候补): trains or slots, with a deadline.

Trains: a trip (from, to) on a date, for 1-5 passengers of the account's list, with ranked
(run, class) choices. The same real-name rules as a hold apply at filing (party, list,
the day's cancellations, overlapping trips) and again when the order is fulfilled
(overlapping trips; one ticket per person per run, in Lua). Every choice must be on sale
and **sold out for the party**: 余票 for the trip below the number of passengers (read
again after enrolment, so a place freed in between is either seen here or kept in cooling
for the order).

Slots: resources (e.g. a department's doctors, a district's vaccination sites) over a day
range, for the account holder. Every published slot in range must be released (the
waitlist never jumps a sale opening) and have no place left.

Order of writes: the order and its choices in Postgres (committed), then enrolment on each
unit in Redis, then the sold-out check; a choice found on sale ends the order at once
(``not_sold_out``). A retry with the same Idempotency-Key answers the first order.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

from inventory.waitlist_keys import seat_unit, slot_unit
from reservation.domain.clock import from_ms, local_day
from reservation.domain.slot_domains import domain_from_id
from reservation.domain.ticket_rules import (
    TicketRuleError,
    check_cancellation_limit,
    check_party,
    china_day_bounds,
)
from reservation.errors import NotFound
from reservation.fairness import waitlist as rules
from reservation.fairness.waitlist import WaitlistRuleError
from reservation.services import Services
from reservation.store import accounts as account_store
from reservation.store import bookings as booking_store
from reservation.store import passengers as passenger_store
from reservation.store import waitlist as store
from reservation.workflows.hold_tickets import check_class, check_overlaps, trip, trip_of
from reservation.workflows.slot_domains import LEGACY_VACCINE_EXPR, refusal_for
from reservation.workflows.train_inventory import remaining, require_on_sale
from reservation.workflows.train_orders import UnknownPassenger, config
from reservation.workflows.train_orders import rule_refusal as ticket_refusal
from reservation.workflows.waitlist_common import (
    NothingToWaitFor,
    NotSoldOut,
    check_account_cap,
    freeing,
    order_id_for,
    order_view,
    rule_refusal,
)


async def _enroll_and_recheck(
    services: Services,
    order: dict[str, Any],
    choices: Sequence[store.ChoiceRow],
    still_sold_out: Any,
) -> dict[str, Any]:
    """Enrol on every unit, then re-check that nothing is on sale; end the order if so."""
    wl = freeing(services)
    for c in choices:
        await wl.enroll(c.unit, order["id"])
    refusal = await still_sold_out()
    if refusal is not None:
        now = from_ms(services.clock())
        async with services.pool.acquire() as conn:
            await store.mark_ended(conn, order["id"], "ended", "not_sold_out", now)
        for c in choices:
            await wl.enroll(c.unit, order["id"], leave=True)
        raise refusal
    return order


async def file_train_order(
    services: Services,
    *,
    account_id: str,
    origin: str,
    destination: str,
    day: dt.date,
    choices: Sequence[tuple[str, str]],
    passenger_ids: Sequence[str],
    deadline: dt.datetime,
    idempotency_key: str | None,
) -> dict[str, Any]:
    now_ms = services.clock()
    now = from_ms(now_ms)
    try:
        check_party(passenger_ids, config(services).rules)
    except TicketRuleError as exc:
        raise ticket_refusal(exc) from None
    try:
        rules.check_train_choices(choices)
        rules.check_deadline(now, deadline, services.settings.waitlist_max_days)
    except WaitlistRuleError as exc:
        raise rule_refusal(exc) from None
    key = idempotency_key or secrets.token_hex(16)
    order_id = order_id_for(services, account_id, key)
    async with services.pool.acquire() as conn:
        existing = await store.order_by_key(conn, account_id, key)
    if existing is not None:
        return await order_view(services, existing)
    await check_account_cap(services, account_id)

    rows: list[store.ChoiceRow] = []
    trips = []
    for rank, (run_id, seat_class) in enumerate(choices):
        run, status, a, b = await trip_of(services, run_id, origin, destination)
        await check_class(services, run, seat_class)
        departs = run.departure_at(a)
        if departs is None or local_day(departs) != day:
            raise rule_refusal(
                WaitlistRuleError(
                    "bad_choices", f"Run {run_id} does not leave {origin} on {day}.", run_id=run_id
                )
            )
        require_on_sale(services, run, a, status)
        unit = seat_unit(run.run_id, seat_class)
        rows.append(
            store.ChoiceRow(
                rank=rank,
                unit=unit,
                shard=services.seats.keys.run_shard(run.run_id),
                run_id=run.run_id,
                seat_class=seat_class,
                seg_from=a,
                seg_to=b,
            )
        )
        trips.append((run, seat_class, a, b))

    async with services.pool.acquire() as conn:
        await passenger_store.ensure_holder(conn, account_id, local_day(now))
        people = await passenger_store.person_hmacs(conn, account_id, list(passenger_ids))
        cancelled = await booking_store.unpaid_cancellation_times(
            conn, account_id, china_day_bounds(now)[0]
        )
    missing = [p for p in passenger_ids if p not in people]
    if missing:
        raise UnknownPassenger(passenger_ids=missing)
    try:
        check_cancellation_limit(cancelled, now, config(services).rules)
    except TicketRuleError as exc:
        raise ticket_refusal(exc) from None
    persons = [people[p] for p in passenger_ids]
    for run, _, a, b in trips:
        await check_overlaps(services, persons, trip(run, a, b), labels=passenger_ids)

    async def check_sold_out() -> NotSoldOut | None:
        for run, seat_class, a, b in trips:
            left = (await remaining(services, run, seat_class))[a, b]
            if not rules.sold_out(left, len(persons)):
                return NotSoldOut(run_id=run.run_id, seat_class=seat_class, remaining=left)
        return None

    early = await check_sold_out()
    if early is not None:
        raise early
    request = {
        "from": origin,
        "to": destination,
        "date": day.isoformat(),
        "choices": [{"run_id": r, "seat_class": c} for r, c in choices],
    }
    async with services.pool.acquire() as conn, conn.transaction():
        order, created = await store.insert_order(
            conn,
            order_id=order_id,
            account_id=account_id,
            kind="train",
            filed_at=now,
            deadline=deadline,
            people=persons,
            passenger_ids=list(passenger_ids),
            request=request,
            idempotency_key=key,
            choices=rows,
        )
    if created:
        await _enroll_and_recheck(services, order, rows, check_sold_out)
    return await order_view(services, order)


async def file_slot_order(
    services: Services,
    *,
    account_id: str,
    resource_ids: Sequence[str],
    first_day: dt.date,
    last_day: dt.date,
    deadline: dt.datetime,
    idempotency_key: str | None,
    person: str | None = None,
) -> dict[str, Any]:
    """Generic slot resources only: hospital and vaccination resources are refused (409
    ``use_hospital_route`` / ``use_vaccine_route``), their waitlists apply their own rules
    (``hospital_standby``, ``vaccine_waitlist``)."""
    now_ms = services.clock()
    now = from_ms(now_ms)
    try:
        days = rules.slot_days(
            first_day, last_day, local_day(now), services.settings.waitlist_max_days
        )
        rules.check_slot_choices(resource_ids, days)
        rules.check_deadline(now, deadline, services.settings.waitlist_max_days)
    except WaitlistRuleError as exc:
        raise rule_refusal(exc) from None
    key = idempotency_key or secrets.token_hex(16)
    order_id = order_id_for(services, account_id, key)
    async with services.pool.acquire() as conn:
        existing = await store.order_by_key(conn, account_id, key)
        if existing is not None:
            return await order_view(services, existing)
        if person is None:
            account = await account_store.get_account(conn, account_id)
            if account is None:
                raise NotFound("No such account.")
            person = str(account["id_hmac"])
        known = await conn.fetch(
            "SELECT r.id, (" + LEGACY_VACCINE_EXPR + ") AS legacy_vaccine"
            " FROM resources r JOIN providers p ON p.id = r.provider_id"
            " WHERE r.id = ANY($1::text[])",
            list(resource_ids),
        )
        slots = await conn.fetch(
            "SELECT id, resource_id, day, release_at, ends_at, status FROM slots"
            " WHERE resource_id = ANY($1::text[]) AND day BETWEEN $2 AND $3",
            list(resource_ids),
            first_day,
            last_day,
        )
    unknown = sorted(set(resource_ids) - {r["id"] for r in known})
    if unknown:
        raise NotFound("No such resource.", resource_ids=unknown)
    # --- domain guard (issues 5/6): a plain hold here would skip the domain's own rules
    for r in known:
        domain = domain_from_id(r["id"]) or ("vaccine" if r["legacy_vaccine"] else "generic")
        refusal = refusal_for(domain, resource_id=r["id"])
        if refusal is not None:
            raise refusal
    await check_account_cap(services, account_id)
    live = [s for s in slots if s["status"] == "open" and s["ends_at"] > now]
    if not live:
        raise NothingToWaitFor()
    unreleased = [s["id"] for s in live if s["release_at"] > now]
    if unreleased:
        # Waiting must never jump a sale opening: book at the release instead.
        raise NotSoldOut(
            "Some of these slots are not released yet: book them at their release.",
            slot_ids=unreleased[:20],
        )

    async def check_sold_out() -> NotSoldOut | None:
        available = await services.slots.available([s["id"] for s in live])
        free = [sid for sid, n in available.items() if n]
        return NotSoldOut(slot_ids=free[:20]) if free else None

    early = await check_sold_out()
    if early is not None:
        raise early
    rows = []
    for i, resource_id in enumerate(resource_ids):
        for j, day in enumerate(days):
            rows.append(
                store.ChoiceRow(
                    rank=i * len(days) + j,
                    unit=slot_unit(resource_id, day.isoformat()),
                    shard=services.keys.shard("res:" + resource_id),
                    resource_id=resource_id,
                    day=day,
                )
            )
    request = {
        "resource_ids": list(resource_ids),
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
    }
    async with services.pool.acquire() as conn, conn.transaction():
        order, created = await store.insert_order(
            conn,
            order_id=order_id,
            account_id=account_id,
            kind="slot",
            filed_at=now,
            deadline=deadline,
            people=[person],
            passenger_ids=[],
            request=request,
            idempotency_key=key,
            choices=rows,
        )
    if created:
        await _enroll_and_recheck(services, order, rows, check_sold_out)
    return await order_view(services, order)
