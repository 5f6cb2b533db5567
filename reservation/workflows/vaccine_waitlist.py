"""Vaccine waitlist (候补, issue 5): wait for a product at one site or any site of a
district over a day range, until a deadline, for oneself or a consenting listed person.

Filing: the campaign's rules for the person as far as they can be known then (age on the
first day, priority group, dose order: a product with nothing left to book is refused),
the order and its units ((resource, day): the product at each site, each day) committed
in Postgres, then enrolled on the units in Redis (member = the order id), then the
sold-out check again (a place on open sale ends the order: book it instead).

Fulfilment (the waitlist filler, ``offer_piece``): a place freed at a vaccination
resource stays in cooling while orders wait on its unit; the filler offers it here in
filing order. The first order whose rules allow it gets a **held booking made exactly as
``POST /v1/vaccine/bookings`` makes it**, under the person's lock: eligibility and dose
order re-checked on the day, and for a series product dose 1 at the freed place with dose
2 found in its interval at the same resource (earliest open place), both held in ONE
script call (``slot_hold_series`` naming the piece: dose 1 from cooling, dose 2 from open
stock, or neither). No dose 2 fits: the order is skipped (keeps waiting). Then appointments (held,
payment deadline), held notes, the order fulfilled with ``WAITLIST_FULFILLED`` and the
allocation audited, one transaction; the order leaves its units. It is paid with
``POST /v1/vaccine/bookings/{series_id}/confirm``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from inventory.errors import InventoryError
from inventory.series_engine import SeriesRefused, series_engine
from inventory.waitlist_keys import slot_unit
from reservation.domain.clock import CHINA, from_ms, iso, local_day
from reservation.domain.slots import hold_deadline_ms
from reservation.domain.vaccine import PlannedDose, check_plan, dose_window
from reservation.errors import FairseatError, NotFound
from reservation.fairness.waitlist import MAX_WAITING_PER_ACCOUNT
from reservation.notifications.record import NotificationKind, record_notification
from reservation.services import Services
from reservation.store import vaccine as store
from reservation.workflows.hold_slot import derive_hold_id
from reservation.workflows.vaccine_booking import (
    _campaign,
    _history,
    _notification_payload,
    dose_key,
    series_id_for,
    subject_of,
)
from reservation.workflows.vaccine_people import NotEligible, Person, resolve_person
from reservation.workflows.waitlist_common import (
    NothingToWaitFor,
    NotSoldOut,
    NotWaiting,
    WaitlistCap,
    freeing,
    record_fulfilled,
)

MAX_DAYS = 14


class BadVaccineWaitlist(FairseatError):
    code = "bad_waitlist_order"
    http_status = 422
    default_message = "This waitlist order is not valid."


def order_id_for(services: Services, account_id: str, key: str) -> str:
    digest = hmac.new(
        services.secret_key, f"vwait|{account_id}|{key}".encode(), hashlib.sha256
    ).hexdigest()
    return f"vw{digest[:24]}"


def _end_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), CHINA)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


async def _units_of(conn: Any, order: dict[str, Any]) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT resource_id, day FROM vaccine_waitlist_units WHERE waitlist_id = $1",
            order["id"],
        )
    )


async def _enroll(services: Services, order_id: str, units: list[Any], leave: bool) -> None:
    wl = freeing(services)
    for u in units:
        await wl.enroll(slot_unit(u["resource_id"], u["day"].isoformat()), order_id, leave=leave)


async def _leave(services: Services, order_id: str) -> None:
    async with services.pool.acquire() as conn:
        units = await _units_of(conn, {"id": order_id})
    await _enroll(services, order_id, units, leave=True)


async def _open_places(
    services: Services,
    conn: Any,
    resource_ids: list[str],
    first: dt.date,
    last: dt.date,
    now: dt.datetime,
) -> list[str]:
    """Released open slots in range with a place on open sale."""
    slots = await conn.fetch(
        "SELECT id FROM slots WHERE resource_id = ANY($1::text[]) AND day BETWEEN $2 AND $3"
        " AND status = 'open' AND release_at <= $4 AND ends_at > $4",
        resource_ids,
        first,
        last,
        now,
    )
    available = await services.slots.available([s["id"] for s in slots])
    return [sid for sid, n in available.items() if n]


async def file_order(
    services: Services,
    *,
    account_id: str,
    campaign_id: str,
    passenger_id: str | None,
    site_id: str | None,
    city_code: str | None,
    district: str | None,
    first_day: dt.date,
    last_day: dt.date,
    deadline: dt.datetime | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    now = from_ms(services.clock())
    today = local_day(now)
    if (site_id is None) == (district is None or city_code is None):
        raise BadVaccineWaitlist("Give either site_id, or city and district.", field="site_id")
    if first_day < today or last_day < first_day or (last_day - first_day).days >= MAX_DAYS:
        raise BadVaccineWaitlist(
            f"The days run from today on, {MAX_DAYS} at most.", field="last_day", max=MAX_DAYS
        )
    until = deadline or _end_of(last_day)
    if until <= now or until > _end_of(last_day):
        raise BadVaccineWaitlist(
            "The deadline must be in the future and not after the last day.", field="deadline"
        )
    key = idempotency_key or secrets.token_hex(16)
    order_id = order_id_for(services, account_id, key)
    async with services.pool.acquire() as conn:
        existing = await conn.fetchrow("SELECT * FROM vaccine_waitlist WHERE id = $1", order_id)
        if existing is not None:
            return await order_view(services, dict(existing))
        person = await resolve_person(conn, account_id, passenger_id)
        campaign = await _campaign(conn, campaign_id)
        product = campaign.product
        given, live = await _history(conn, person.hmac, product.code, now)
        start = len(given) + len(live) + 1
        plan = [PlannedDose(start, first_day)]
        if product.book_series and start == 1 and product.doses >= 2:
            # The day of dose 2 is known only when a place frees up: check its earliest.
            low, _ = dose_window(first_day, product, 2)
            plan.append(PlannedDose(2, low))
        refusal = check_plan(
            campaign,
            birth=person.birth,
            groups=await store.person_groups(conn, person.hmac),
            given=given,
            booked=[a["day"] for a in live],
            plan=plan,
        )
        if refusal is not None and refusal.code != "dose_interval":
            raise NotEligible(refusal.message, reason=refusal.code)
        waiting = await conn.fetchval(
            "SELECT count(*) FROM vaccine_waitlist WHERE account_id = $1 AND status = 'waiting'",
            account_id,
        )
        if waiting >= MAX_WAITING_PER_ACCOUNT:
            raise WaitlistCap(limit=MAX_WAITING_PER_ACCOUNT)
        resources = [
            r["id"]
            for r in await conn.fetch(
                """SELECT r.id FROM resources r
                   JOIN vaccine_sites vs ON vs.provider_id = r.provider_id
                   WHERE r.code = $1 AND r.kind = 'vaccination'
                     AND (vs.provider_id = $2 OR (vs.city_code = $3 AND vs.district = $4))""",
                product.code,
                site_id,
                city_code,
                district,
            )
        ]
        if not resources:
            raise NothingToWaitFor()
        published = await conn.fetchval(
            "SELECT count(*) FROM slots WHERE resource_id = ANY($1::text[])"
            " AND day BETWEEN $2 AND $3 AND status = 'open' AND ends_at > $4",
            resources,
            first_day,
            last_day,
            now,
        )
        if not published:
            raise NothingToWaitFor()
        free = await _open_places(services, conn, resources, first_day, last_day, now)
        if free:
            raise NotSoldOut(slot_ids=free[:20])
        async with conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO vaccine_waitlist (id, account_id, idempotency_key, person_hmac,
                       passenger_id, campaign_id, product_code, site_id, city_code, district,
                       first_day, last_day, deadline, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                   ON CONFLICT (id) DO NOTHING RETURNING *""",
                order_id,
                account_id,
                key,
                person.hmac,
                person.passenger_id,
                campaign_id,
                product.code,
                site_id,
                None if site_id else city_code,
                None if site_id else district,
                first_day,
                last_day,
                until,
                now,
            )
            if row is None:
                found = await conn.fetchrow(
                    "SELECT * FROM vaccine_waitlist WHERE id = $1", order_id
                )
                return await order_view(services, dict(found))
            await conn.executemany(
                "INSERT INTO vaccine_waitlist_units (waitlist_id, resource_id, day)"
                " VALUES ($1, $2, $3)",
                [(order_id, r, d) for r in resources for d in _days(first_day, last_day)],
            )
        order = dict(row)
        units = await _units_of(conn, order)
    # Committed first, enrolled second, then checked again (docs/waitlist.md).
    await _enroll(services, order_id, units, leave=False)
    async with services.pool.acquire() as conn:
        free = await _open_places(services, conn, resources, first_day, last_day, now)
        if free:
            await _end(conn, order_id, "ended", "not_sold_out", now)
    if free:
        await _enroll(services, order_id, units, leave=True)
        raise NotSoldOut(slot_ids=free[:20])
    return await order_view(services, order)


async def _end(conn: Any, order_id: str, status: str, reason: str, now: dt.datetime) -> bool:
    done = await conn.fetchval(
        "UPDATE vaccine_waitlist SET status = $2, end_reason = $3, ended_at = $4"
        " WHERE id = $1 AND status = 'waiting' RETURNING id",
        order_id,
        status,
        reason,
        now,
    )
    return done is not None


async def order_view(services: Services, order: dict[str, Any]) -> dict[str, Any]:
    """The order with its place in line: waiting orders filed no later that share one of
    its units (1 = next served)."""
    async with services.pool.acquire() as conn:
        position = None
        if order["status"] == "waiting":
            position = await conn.fetchval(
                """SELECT count(DISTINCT w.id) FROM vaccine_waitlist w
                   JOIN vaccine_waitlist_units u ON u.waitlist_id = w.id
                   JOIN vaccine_waitlist_units mine ON mine.resource_id = u.resource_id
                        AND mine.day = u.day AND mine.waitlist_id = $1
                   WHERE w.status = 'waiting' AND w.seq <= $2""",
                order["id"],
                order["seq"],
            )
        sites = await conn.fetchval(
            "SELECT count(DISTINCT resource_id) FROM vaccine_waitlist_units WHERE waitlist_id = $1",
            order["id"],
        )
    return {
        "id": order["id"],
        "state": order["status"],
        "position": position,
        "campaign_id": order["campaign_id"],
        "product": order["product_code"],
        "passenger_id": order["passenger_id"],
        "site_id": order["site_id"],
        "city_code": order["city_code"],
        "district": order["district"],
        "sites": sites,
        "first_day": order["first_day"].isoformat(),
        "last_day": order["last_day"].isoformat(),
        "deadline": iso(order["deadline"]),
        "filed_at": iso(order["created_at"]),
        "series_id": order["series_id"],
        "ended_at": iso(order["ended_at"]),
        "end_reason": order["end_reason"],
    }


async def my_orders(services: Services, account_id: str) -> list[dict[str, Any]]:
    async with services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM vaccine_waitlist WHERE account_id = $1 ORDER BY seq DESC LIMIT 50",
            account_id,
        )
    return [await order_view(services, dict(r)) for r in rows]


async def my_order(services: Services, account_id: str, order_id: str) -> dict[str, Any]:
    async with services.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM vaccine_waitlist WHERE id = $1", order_id)
    if row is None or row["account_id"] != account_id:
        raise NotFound("No such waitlist order.")
    return await order_view(services, dict(row))


async def cancel_order(services: Services, account_id: str, order_id: str) -> dict[str, Any]:
    now = from_ms(services.clock())
    async with services.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM vaccine_waitlist WHERE id = $1", order_id)
        if row is None or row["account_id"] != account_id:
            raise NotFound("No such waitlist order.")
        done = await _end(conn, order_id, "cancelled", "withdrawn", now)
        if not done and row["status"] != "cancelled":
            raise NotWaiting(state=row["status"])
    await _leave(services, order_id)
    view = await my_order(services, account_id, order_id)
    return {**view, "replay": not done}


async def end_due(services: Services, limit: int = 500) -> int:
    now = from_ms(services.clock())
    async with services.pool.acquire() as conn:
        due = await conn.fetch(
            "SELECT id, account_id FROM vaccine_waitlist WHERE status = 'waiting'"
            " AND deadline <= $1 ORDER BY deadline LIMIT $2",
            now,
            limit,
        )
    ended = 0
    for order in due:
        async with services.pool.acquire() as conn, conn.transaction():
            if not await _end(conn, order["id"], "ended", "deadline", now):
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
        await _leave(services, order["id"])
        ended += 1
    return ended


async def reenroll_all(services: Services) -> None:
    async with services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT u.waitlist_id, u.resource_id, u.day FROM vaccine_waitlist_units u"
            " JOIN vaccine_waitlist w ON w.id = u.waitlist_id WHERE w.status = 'waiting'"
        )
    wl = freeing(services)
    for r in rows:
        await wl.enroll(slot_unit(r["resource_id"], r["day"].isoformat()), r["waitlist_id"])


def _order_key(order_id: str) -> str:
    """The idempotency key of an order's series (and so of its holds' bookings)."""
    return f"vwait:{order_id}"


def _series_hold_ids(
    services: Services, order: dict[str, Any], slots: list[dict[str, Any]], plan: list[PlannedDose]
) -> list[str]:
    """The hold id of each dose of the order's series: the fulfilment holds under these,
    and the recovery of a crashed one recognises its holds by them."""
    key = _order_key(order["id"])
    return [
        derive_hold_id(services, s["id"], order["account_id"], dose_key(key, p.dose))
        for s, p in zip(slots, plan, strict=True)
    ]


async def settle_orphans(services: Services) -> int:
    """Finish the series a crash left held in Redis only: the filler held an order's doses
    (one script call) but the transaction recording them never committed, so the citizen
    held places they were never told of, until the deadline. Found in Postgres: live
    bookings whose idempotency key names a waiting order (``vwait:<order>``, written by
    the persister from the holds' events) with no appointment row. The doses are numbered
    as at the fulfilment (the person's doses given and booked, then these by time); if
    that no longer gives the same hold ids, the series is left to expire. Returns how
    many orders were finished."""
    async with services.pool.acquire() as conn:
        rows = await store.orphaned_waitlist_series(conn)
    by_order: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_order.setdefault(r["order_id"], []).append(r)
    settled: list[str] = []
    for order_id, holds in by_order.items():
        now = from_ms(services.clock())
        async with services.pool.acquire() as conn, conn.transaction():
            order = await conn.fetchrow(
                "SELECT * FROM vaccine_waitlist WHERE id = $1 AND status = 'waiting' FOR UPDATE",
                order_id,
            )
            if order is None:
                continue
            order = dict(order)
            try:
                person = await resolve_person(conn, order["account_id"], order["passenger_id"])
            except FairseatError:
                continue  # consent withdrawn meanwhile: the holds expire
            product = (await _campaign(conn, order["campaign_id"])).product
            await store.lock_person(conn, person.hmac)
            given, live = await _history(conn, person.hmac, product.code, now)
            infos = await store.slots_info(conn, [h["slot_id"] for h in holds])
            if len(infos) != len(holds):
                continue
            slots = sorted(infos.values(), key=lambda s: s["starts_at"])
            start = len(given) + len(live) + 1
            plan = [PlannedDose(start + i, local_day(s["starts_at"])) for i, s in enumerate(slots)]
            hold_ids = _series_hold_ids(services, order, slots, plan)
            if sorted(hold_ids) != sorted(h["hold_id"] for h in holds):
                continue  # numbered otherwise now: not this series' doses
            deadline = min(h["deadline"] for h in holds)
            await _record_fulfilment(
                services,
                conn,
                order,
                person,
                product.code,
                slots,
                plan,
                hold_ids,
                series_id_for(services, order["account_id"], _order_key(order_id)),
                int(deadline.timestamp() * 1000),
                "recovered",
                now,
            )
        settled.append(order_id)
    for order_id in settled:
        await _leave(services, order_id)
    return len(settled)


async def offer_piece(services: Services, *, slot_id: str, piece_id: str) -> bool:
    """The filler's hook for a vaccination resource's place in cooling: the first order
    in line whose rules allow it gets a held booking. True if given."""
    meta = await services.slots.slot_meta(slot_id)
    now = from_ms(services.clock())
    given: str | None = None
    async with services.pool.acquire() as conn, conn.transaction():
        line = await conn.fetch(
            """SELECT w.* FROM vaccine_waitlist w
               JOIN vaccine_waitlist_units u ON u.waitlist_id = w.id
               WHERE u.resource_id = $1 AND u.day = $2 AND w.status = 'waiting'
                 AND w.deadline > $3
               ORDER BY w.seq LIMIT 50 FOR UPDATE OF w SKIP LOCKED""",
            meta.resource_id,
            dt.date.fromisoformat(meta.day),
            now,
        )
        if not line:
            return False
        infos = await store.slots_info(conn, [slot_id])
        first = infos.get(slot_id)
        if first is None:
            return False
        for order in line:
            outcome = await _try_order(services, conn, dict(order), first, piece_id, now)
            if outcome == "gone":
                return False
            if outcome == "given":
                given = order["id"]
                break
    if given is None:
        return False
    await _leave(services, given)
    return True


async def _try_order(
    services: Services,
    conn: Any,
    order: dict[str, Any],
    first: dict[str, Any],
    piece_id: str,
    now: dt.datetime,
) -> str:
    """'given', 'skip' (this order's rules refuse; the next one may fit) or 'gone' (the
    piece is no longer there)."""
    try:
        person = await resolve_person(conn, order["account_id"], order["passenger_id"])
    except FairseatError:
        return "skip"  # consent withdrawn or the person left the list
    campaign = await _campaign(conn, order["campaign_id"])
    product = campaign.product
    await store.lock_person(conn, person.hmac)
    given, live = await _history(conn, person.hmac, product.code, now)
    start = len(given) + len(live) + 1
    day1 = local_day(first["starts_at"])
    groups = await store.person_groups(conn, person.hmac)

    def refused(plan: list[PlannedDose]) -> bool:
        return (
            check_plan(
                campaign,
                birth=person.birth,
                groups=groups,
                given=given,
                booked=[a["day"] for a in live],
                plan=plan,
            )
            is not None
        )

    candidates: list[list[dict[str, Any]]] = [[first]]
    if product.book_series and start == 1 and product.doses >= 2:
        low, high = dose_window(day1, product, 2)
        later = await store.resource_slots(conn, first["resource_id"], low, high)
        available = await services.slots.available([s["id"] for s in later])
        candidates = [
            [first, s] for s in later if available.get(s["id"]) and s["release_at"] <= now
        ]
    key = _order_key(order["id"])
    series_id = series_id_for(services, order["account_id"], key)
    for slots in candidates:
        plan = [PlannedDose(start + i, local_day(s["starts_at"])) for i, s in enumerate(slots)]
        if refused(plan):
            continue
        hold_ids = _series_hold_ids(services, order, slots, plan)
        now_ms = services.clock()
        deadline = hold_deadline_ms(
            now_ms,
            services.settings.slot_hold_seconds,
            min(int(s["ends_at"].timestamp() * 1000) for s in slots),
        )
        try:
            held = await series_engine(services.slots).hold(
                piece_id=piece_id,
                slot_ids=[s["id"] for s in slots],
                hold_ids=hold_ids,
                account_id=order["account_id"],
                person=person.hmac,
                series_id=series_id,
                idempotency_key=key,
                order_id=order["id"],
                now_ms=now_ms,
                deadline_ms=deadline,
            )
        except SeriesRefused as exc:
            if exc.dose_index == 1:
                code = getattr(exc.cause, "code", "")
                return "skip" if code == "person_limit" else "gone"
            continue  # that dose 2 filled up meanwhile: the next one
        except InventoryError:
            return "gone"
        await _record_fulfilment(
            services,
            conn,
            order,
            person,
            product.code,
            slots,
            plan,
            hold_ids,
            series_id,
            held.deadline_ms,
            piece_id,
            now,
        )
        return "given"
    return "skip"


async def _record_fulfilment(
    services: Services,
    conn: Any,
    order: dict[str, Any],
    person: Person,
    product_code: str,
    slots: list[dict[str, Any]],
    plan: list[PlannedDose],
    hold_ids: list[str],
    series_id: str,
    deadline_ms: int,
    piece_id: str,
    now: dt.datetime,
) -> None:
    """The Postgres side of a series held for an order (``conn``'s transaction): the
    appointments, their held notes, the order fulfilled, WAITLIST_FULFILLED, the audit."""
    rows = [
        {
            "id": hold_id,
            "series_id": series_id,
            "account_id": order["account_id"],
            "person_hmac": person.hmac,
            "passenger_id": person.passenger_id,
            "person_name": person.name,
            "person_masked": person.masked,
            "product_code": product_code,
            "campaign_id": order["campaign_id"],
            "dose": p.dose,
            "slot_id": s["id"],
            "provider_id": s["provider_id"],
            "site_name": s.get("site_name"),
            "day": p.day,
            "starts_at": s["starts_at"],
            "state": "held",
            "deadline": from_ms(deadline_ms),
            "created_at": now,
        }
        for hold_id, s, p in zip(hold_ids, slots, plan, strict=True)
    ]
    await store.insert_appointments(conn, rows)
    for row in rows:
        await record_notification(
            conn,
            account_id=order["account_id"],
            kind=NotificationKind.HELD,
            subject=subject_of(row["id"]),
            payload={**_notification_payload(row, "held"), "pay_by": iso(row["deadline"])},
            dedupe_key=f"{subject_of(row['id'])}:held",
            at=now,
        )
    await conn.execute(
        "UPDATE vaccine_waitlist SET status = 'fulfilled', series_id = $2, ended_at = $3"
        " WHERE id = $1",
        order["id"],
        series_id,
        now,
    )
    payload = {
        "order": order["id"],
        "series_id": series_id,
        "holds": hold_ids,
        "slots": [s["id"] for s in slots],
        "piece": piece_id,
        "deadline": iso(from_ms(deadline_ms)),
        "product": product_code,
    }
    await record_fulfilled(
        conn, order_id=order["id"], account_id=order["account_id"], payload=payload, now=now
    )
