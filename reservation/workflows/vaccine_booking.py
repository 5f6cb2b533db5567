"""Booking vaccine doses: hold a series (or one dose), confirm it, cancel it, move a dose.

Always, in this order, for a booking:
1. the person is resolved (self, or a listed person who consented) and the slots are read;
2. under a per-person lock in Postgres, the pure rules (``domain.vaccine.check_plan``) see
   the person's doses given and live appointments: age band, priority group, dose order,
   intervals, "dose 1 only with dose 2";
3. the account's cap on unpaid holds, then ONE ``slot_hold_series`` call holds every dose
   (one resource, one shard): all of them or none;
4. the appointment rows and the ``held`` notifications commit with the lock released.
Confirming is ONE ``slot_confirm_series`` call (every dose or none), then the booking rows,
the appointments, notifications and reminders commit before the answer.
Cancelling releases the doses last first, so a crash half-way never leaves dose 1 booked
without dose 2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inventory.errors import (
    HoldCapReached,
    HoldNotLive,
    InventoryError,
    NotFoundInInventory,
)
from inventory.series_engine import SeriesRefused, series_engine
from inventory.slot_codes import IdempotencyKeyReused
from reservation.domain.bookings import BookingRow
from reservation.domain.clock import from_ms, iso, local_day
from reservation.domain.slots import hold_deadline_ms
from reservation.domain.vaccine import (
    LIVE_APPOINTMENT_STATES,
    Campaign,
    PlannedDose,
    check_plan,
    dose_window,
    effective_state,
    fits_after,
)
from reservation.domain.verification import verification_code
from reservation.errors import Conflict, NotFound, StoreUnavailable, ValidationFailed
from reservation.notifications.record import (
    NotificationKind,
    cancel_reminders,
    record_notification,
    schedule_reminder,
)
from reservation.services import Services
from reservation.store import vaccine as store
from reservation.store.bookings import upsert_bookings
from reservation.store.db import is_transient
from reservation.store.inventory_state import fence
from reservation.workflows.epoch_fence import write_epoch
from reservation.workflows.hold_slot import derive_hold_id
from reservation.workflows.vaccine_people import NotEligible, Person, resolve_person

REMIND_BEFORE = dt.timedelta(days=1)


def series_id_for(services: Services, account_id: str, idempotency_key: str) -> str:
    digest = hmac.new(
        services.secret_key, f"vseries|{account_id}|{idempotency_key}".encode(), hashlib.sha256
    ).hexdigest()[:20]
    return f"vs-{digest}"


def dose_key(idempotency_key: str, dose: int) -> str:
    return f"{idempotency_key}#vd{dose}"


def now_of(services: Services) -> dt.datetime:
    return from_ms(services.clock())


async def _campaign(conn: Any, campaign_id: str) -> Campaign:
    found = await store.campaign(conn, campaign_id)
    if found is None:
        raise NotFound("No such campaign.")
    return found


def _live(rows: Sequence[dict[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if effective_state(r["state"], r["booking_state"], r["deadline"], now)
        in LIVE_APPOINTMENT_STATES
    ]


async def _history(
    conn: Any, person: str, product: str, now: dt.datetime, *, exclude_series: str | None = None
) -> tuple[list[dt.date], list[dict[str, Any]]]:
    """(days of the doses given, live appointments after them, by dose)."""
    given = [d["given_on"] for d in await store.doses_of_person(conn, person, product)]
    live = [
        a
        for a in _live(await store.appointments_of_person(conn, person, product), now)
        if a["dose"] > len(given) and a["series_id"] != exclude_series
    ]
    live.sort(key=lambda a: a["dose"])
    return given, live


def _slot_error(index: int, message: str) -> ValidationFailed:
    return ValidationFailed(errors=[{"field": f"slot_ids.{index}", "message": message}])


def subject_of(appointment_id: str) -> str:
    """The notification subject of a slot booking (reservation.notifications.messages):
    the persister records the generic notification of the same event under the same
    dedupe key, so whichever commits first is the one the citizen gets, once."""
    return f"booking:{appointment_id}"


def _notification_payload(row: dict[str, Any], state: str) -> dict[str, Any]:
    return {
        "booking_id": row["id"],
        "slot_id": row["slot_id"],
        "state": state,
        "appointment_id": row["id"],
        "series_id": row["series_id"],
        "product": row["product_code"],
        "dose": row["dose"],
        "site_id": row["provider_id"],
        "site": row.get("site_name"),
        "starts_at": iso(row["starts_at"]),
        "person": row["person_masked"],
    }


@dataclass(frozen=True, slots=True)
class Booked:
    series_id: str
    state: str
    deadline_ms: int
    replay: bool
    appointments: list[dict[str, Any]]


async def book(
    services: Services,
    *,
    account_id: str,
    campaign_id: str,
    slot_ids: Sequence[str],
    passenger_id: str | None,
    first_dose: int | None,
    idempotency_key: str | None,
) -> Booked:
    key = idempotency_key or secrets.token_hex(16)
    if len(set(slot_ids)) != len(slot_ids):
        raise ValidationFailed(errors=[{"field": "slot_ids", "message": "a slot appears twice"}])
    now = now_of(services)
    series_id = series_id_for(services, account_id, key)
    # Read before taking a connection: the script call below runs while this request holds
    # one (under the person's lock), and refreshing the epoch may need another.
    epoch = await series_engine(services.slots).expected_epoch()
    async with services.pool.acquire() as conn:
        person = await resolve_person(conn, account_id, passenger_id)
        campaign = await _campaign(conn, campaign_id)
        product = campaign.product
        infos = await store.slots_info(conn, slot_ids)
        for i, sid in enumerate(slot_ids):
            info = infos.get(sid)
            if info is None:
                raise NotFound("No such slot.", slot_id=sid)
            if info["resource_kind"] != "vaccination" or info["product_code"] != product.code:
                raise _slot_error(i, f"not a session slot of {product.code}")
        if len({infos[s]["resource_id"] for s in slot_ids}) != 1:
            raise _slot_error(1, "the doses of one booking are given at one site")
        ordered = sorted((infos[s] for s in slot_ids), key=lambda s: s["starts_at"])
        earlier = await store.appointments_of_series(conn, series_id)
        if earlier and {a["slot_id"] for a in earlier if a["moved_to"] is None} != set(slot_ids):
            # The hold ids name the shard, so a key reused for another site would not be
            # caught by the script: refuse it here.
            raise IdempotencyKeyReused()
        async with conn.transaction():
            # Fenced by the epoch the script will run under (see epoch_fence): a rebuild
            # that starts meanwhile refuses this commit.
            await fence(conn, services.keys.prefix, epoch)
            await store.lock_person(conn, person.hmac)
            given, live = await _history(
                conn, person.hmac, product.code, now, exclude_series=series_id
            )
            start = first_dose or len(given) + len(live) + 1
            plan = [
                PlannedDose(start + i, local_day(s["starts_at"])) for i, s in enumerate(ordered)
            ]
            refusal = check_plan(
                campaign,
                birth=person.birth,
                groups=await store.person_groups(conn, person.hmac),
                given=given,
                booked=[a["day"] for a in live],
                plan=plan,
            )
            if refusal is not None:
                raise NotEligible(refusal.message, reason=refusal.code)
            hold_ids = [
                derive_hold_id(services, s["id"], account_id, dose_key(key, p.dose))
                for s, p in zip(ordered, plan, strict=True)
            ]
            deadline = hold_deadline_ms(
                services.clock(),
                services.settings.slot_hold_seconds,
                min(int(s["ends_at"].timestamp() * 1000) for s in ordered),
            )
            held = await _hold_within_cap(
                services,
                account_id=account_id,
                person=person,
                series_id=series_id,
                key=key,
                slot_ids=[s["id"] for s in ordered],
                hold_ids=hold_ids,
                plan=plan,
                deadline_ms=deadline,
                epoch=epoch,
            )
            rows = [
                {
                    "id": hold_id,
                    "series_id": series_id,
                    "account_id": account_id,
                    "person_hmac": person.hmac,
                    "passenger_id": person.passenger_id,
                    "person_name": person.name,
                    "person_masked": person.masked,
                    "product_code": product.code,
                    "campaign_id": campaign_id,
                    "dose": p.dose,
                    "slot_id": s["id"],
                    "provider_id": s["provider_id"],
                    "site_name": s["site_name"],
                    "day": p.day,
                    "starts_at": s["starts_at"],
                    "state": "held",
                    "deadline": from_ms(held.deadline_ms),
                    "created_at": now,
                }
                for hold_id, s, p in zip(hold_ids, ordered, plan, strict=True)
            ]
            await store.insert_appointments(conn, rows)
            for row in rows:
                await record_notification(
                    conn,
                    account_id=account_id,
                    kind=NotificationKind.HELD,
                    subject=subject_of(row["id"]),
                    payload={**_notification_payload(row, "held"), "pay_by": iso(row["deadline"])},
                    dedupe_key=f"{subject_of(row['id'])}:held",
                    at=now,
                )
        current = await store.appointments_of_series(conn, series_id)
    return Booked(series_id, held.state, held.deadline_ms, held.replay, current)


@dataclass(frozen=True, slots=True)
class _Held:
    state: str
    deadline_ms: int
    replay: bool


async def _hold_within_cap(
    services: Services,
    *,
    account_id: str,
    person: Person,
    series_id: str,
    key: str,
    slot_ids: list[str],
    hold_ids: list[str],
    plan: list[PlannedDose],
    deadline_ms: int,
    epoch: str,
) -> _Held:
    """The account's cap of unpaid holds (one entry per series, named by its first hold),
    then the series in one script call; a refused series gives its place back."""
    engine = series_engine(services.slots)
    now_ms = services.clock()
    try:
        await services.gate.reserve(
            account_id=account_id,
            hold_id=hold_ids[0],
            now_ms=now_ms,
            deadline_ms=deadline_ms,
            cap=services.settings.max_live_holds_per_account,
        )
    except HoldCapReached:
        existing = await services.slots.read_hold(hold_ids[0])
        if existing is None or existing.account_id != account_id:
            raise
        return _Held(existing.state, existing.deadline_ms, True)
    try:
        held = await engine.hold(
            slot_ids=slot_ids,
            hold_ids=hold_ids,
            account_id=account_id,
            person=person.hmac,
            series_id=series_id,
            idempotency_key=key,
            now_ms=now_ms,
            deadline_ms=deadline_ms,
            expected_epoch=epoch,
        )
    except SeriesRefused as refused:
        await services.gate.release(account_id=account_id, hold_id=hold_ids[0])
        services.metrics.holds.labels("vaccine", refused.cause.code).inc()
        index = min(max(refused.dose_index, 1), len(plan)) - 1
        raise type(refused.cause)(
            f"Dose {plan[index].dose}: {refused.cause.message}",
            dose=plan[index].dose,
            slot_id=slot_ids[index],
        ) from None
    if held.state != "held":
        await services.gate.release(account_id=account_id, hold_id=hold_ids[0])
    services.metrics.holds.labels("vaccine", "replay" if held.replay else "held").inc()
    return _Held(held.state, held.deadline_ms, held.replay)


async def _owned_series(conn: Any, account_id: str, series_id: str) -> list[dict[str, Any]]:
    rows = await store.appointments_of_series(conn, series_id)
    if not rows or rows[0]["account_id"] != account_id:
        raise NotFound("No such vaccine booking.")
    return rows


async def confirm(services: Services, *, account_id: str, series_id: str) -> list[dict[str, Any]]:
    """Every held dose of the series becomes an appointment, or none does; committed in
    Postgres (booking rows, appointments, notifications, reminders) before the answer."""
    now = now_of(services)
    # One pool checkout for the whole confirm, as ``book`` does. At a campaign opening the
    # pool is where requests queue: with a checkout per step, a confirm queued three times
    # (~90 ms each at 300 residents, ~280 of its ~300 ms).
    async with services.pool.acquire() as conn:
        rows = await _owned_series(conn, account_id, series_id)
        live = [r for r in rows if r["state"] in LIVE_APPOINTMENT_STATES]
        if not live:
            raise HoldNotLive()
        live.sort(key=lambda r: r["dose"])
        epoch = await write_epoch(services)  # before the Redis change (see epoch_fence)
        try:
            done = await series_engine(services.slots).confirm(
                hold_ids=[r["id"] for r in live],
                account_id=account_id,
                series_id=series_id,
                now_ms=services.clock(),
            )
        except NotFoundInInventory:
            raise NotFound("No such vaccine booking.") from None
        except InventoryError as exc:
            services.metrics.confirms.labels("vaccine", exc.code).inc()
            raise
        await services.gate.release(account_id=account_id, hold_id=live[0]["id"])
        try:
            async with conn.transaction():
                await fence(conn, services.keys.prefix, epoch)
                await _commit_confirmed(services, conn, live, done.held_ms, done.confirmed_ms, now)
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailable() from exc
            raise
        services.metrics.confirms.labels("vaccine", "replay" if done.replay else "confirmed").inc()
        return await store.appointments_of_series(conn, series_id)


async def _commit_confirmed(
    services: Services,
    conn: Any,
    live: Sequence[dict[str, Any]],
    held_ms: int,
    confirmed_ms: int,
    now: dt.datetime,
) -> None:
    await upsert_bookings(
        conn,
        [
            BookingRow(
                id=r["id"],
                slot_id=r["slot_id"],
                account_id=r["account_id"],
                person_hmac=r["person_hmac"],
                state="confirmed",
                idempotency_key="",
                held_at=from_ms(held_ms),
                deadline=r["deadline"],
                confirmed_at=from_ms(confirmed_ms),
                ended_at=None,
                end_reason=None,
            )
            for r in live
        ],
    )
    codes = {r["id"]: verification_code(r["id"], services.secret_key) for r in live}
    await store.mark_confirmed(conn, codes, now)
    for r in live:
        payload = {**_notification_payload(r, "confirmed"), "verification_code": codes[r["id"]]}
        await record_notification(
            conn,
            account_id=r["account_id"],
            kind=NotificationKind.CONFIRMED,
            subject=subject_of(r["id"]),
            payload=payload,
            dedupe_key=f"{subject_of(r['id'])}:confirmed",
            at=now,
        )
        remind_at = r["starts_at"] - REMIND_BEFORE
        if remind_at > now:
            await schedule_reminder(
                conn,
                account_id=r["account_id"],
                subject=subject_of(r["id"]),
                remind_at=remind_at,
                payload=payload,
                dedupe_key=f"{subject_of(r['id'])}:reminder",
            )


async def _release_all(
    services: Services, rows: Sequence[dict[str, Any]], account_id: str, reason: str
) -> None:
    """Last dose first: a crash half-way leaves a later dose without an earlier one at
    worst, never dose 1 without dose 2. Each release is idempotent (a retry completes)."""
    for r in sorted(rows, key=lambda r: r["dose"], reverse=True):
        try:
            await services.slots.release(
                hold_id=r["id"],
                slot_id=r["slot_id"],
                account_id=account_id,
                now_ms=services.clock(),
                state="cancelled",
                reason=reason,
            )
        except (HoldNotLive, NotFoundInInventory):
            continue  # already ended (expired), or gone with its retention


async def cancel(services: Services, *, account_id: str, series_id: str) -> list[dict[str, Any]]:
    """Cancel every dose of the series not given yet."""
    now = now_of(services)
    async with services.pool.acquire() as conn:
        rows = await _owned_series(conn, account_id, series_id)
    # Also the doses whose place a previous attempt already gave back (only this route
    # cancels a series' holds) but whose appointment it did not end: a retry completes
    # the record and its notes, which no one else writes (the persister leaves a vaccine
    # hold's notes to this workflow).
    live = [
        r
        for r in rows
        if r["state"] in LIVE_APPOINTMENT_STATES
        and effective_state(r["state"], r["booking_state"], r["deadline"], now)
        in (*LIVE_APPOINTMENT_STATES, "cancelled")
    ]
    await _release_all(services, live, account_id, "citizen")
    if live:
        await services.gate.release(account_id=account_id, hold_id=min(live, key=_dose)["id"])
    async with services.pool.acquire() as conn, conn.transaction():
        ended = await store.mark_ended(conn, [r["id"] for r in live], "cancelled", "citizen", now)
        for r in live:
            if r["id"] not in ended:
                continue
            await record_notification(
                conn,
                account_id=account_id,
                kind=NotificationKind.CANCELLED,
                subject=subject_of(r["id"]),
                payload=_notification_payload(r, "cancelled"),
                dedupe_key=f"{subject_of(r['id'])}:cancelled",
                at=now,
            )
            await cancel_reminders(conn, subject=subject_of(r["id"]), at=now)
        return await store.appointments_of_series(conn, series_id)


def _dose(row: dict[str, Any]) -> int:
    return int(row["dose"])


@dataclass(frozen=True, slots=True)
class Moved:
    series_id: str
    moved: dict[str, str]  # old appointment id -> new one
    released: list[str]
    appointments: list[dict[str, Any]]


async def reschedule(
    services: Services,
    *,
    account_id: str,
    appointment_id: str,
    slot_id: str,
    idempotency_key: str | None,
) -> Moved:
    """Move one confirmed dose to another slot. Later doses of its series are re-checked:
    kept if they still fit their interval, else moved to the earliest fitting slot with a
    free place at the new slot's site, else released (the citizen books them later).
    The new doses are held and confirmed in one shard (all or nothing) before the old
    ones are released."""
    key = idempotency_key or secrets.token_hex(16)
    now = now_of(services)
    engine = series_engine(services.slots)
    epoch = await engine.expected_epoch()  # before holding a connection (see ``book``)
    async with services.pool.acquire() as conn:
        appt = await store.appointment(conn, appointment_id)
        if appt is None or appt["account_id"] != account_id:
            raise NotFound("No such appointment.")
        series_rows = await store.appointments_of_series(conn, appt["series_id"])
        if appt["state"] == "moved":
            moved = {r["id"]: r["moved_to"] for r in series_rows if r["moved_to"]}
            return Moved(appt["series_id"], moved, [], series_rows)
        if effective_state(appt["state"], appt["booking_state"], appt["deadline"], now) != (
            "confirmed"
        ):
            raise Conflict("Only a confirmed appointment can be moved.", reason="not_confirmed")
        person = await resolve_person(conn, account_id, appt["passenger_id"])
        campaign = await _campaign(conn, appt["campaign_id"])
        product = campaign.product
        info = (await store.slots_info(conn, [slot_id])).get(slot_id)
        if info is None:
            raise NotFound("No such slot.", slot_id=slot_id)
        if info["resource_kind"] != "vaccination" or info["product_code"] != product.code:
            raise ValidationFailed(
                errors=[{"field": "slot_id", "message": f"not a session slot of {product.code}"}]
            )
        if slot_id == appt["slot_id"]:
            raise Conflict("The appointment is already in this slot.", reason="same_slot")
        later = sorted((r for r in _live(series_rows, now) if r["dose"] > appt["dose"]), key=_dose)
        async with conn.transaction():
            await fence(conn, services.keys.prefix, epoch)  # as in ``book``
            await store.lock_person(conn, person.hmac)
            given, live = await _history(conn, person.hmac, product.code, now)
            earlier = [a["day"] for a in live if a["dose"] < appt["dose"]]
            new_day = local_day(info["starts_at"])
            moves: list[tuple[dict[str, Any], dict[str, Any]]] = [(appt, info)]
            kept: list[dict[str, Any]] = []
            released: list[dict[str, Any]] = []
            previous = new_day
            used_days = {new_day}
            for row in later:
                if released:
                    released.append(row)
                    continue
                if fits_after(product, previous, row["dose"], row["day"]):
                    kept.append(row)
                    previous = row["day"]
                    continue
                replacement = await _first_fitting_slot(
                    services, conn, info["resource_id"], product, previous, row["dose"], used_days
                )
                if replacement is None:
                    released.append(row)
                    continue
                moves.append((row, replacement))
                previous = local_day(replacement["starts_at"])
                used_days.add(previous)
            new_days = {old["dose"]: local_day(new["starts_at"]) for old, new in moves}
            new_days.update({r["dose"]: r["day"] for r in kept})
            plan = [PlannedDose(d, new_days[d]) for d in sorted(new_days)]
            refusal = check_plan(
                campaign,
                birth=person.birth,
                groups=await store.person_groups(conn, person.hmac),
                given=given,
                booked=earlier,
                plan=plan,
                moving=True,
            )
            if refusal is not None:
                raise NotEligible(refusal.message, reason=refusal.code)
            hold_ids = [
                derive_hold_id(services, new["id"], account_id, dose_key(key, old["dose"]))
                for old, new in moves
            ]
            deadline = hold_deadline_ms(
                services.clock(),
                services.settings.slot_hold_seconds,
                min(int(new["ends_at"].timestamp() * 1000) for _, new in moves),
            )
            try:
                held = await engine.hold(
                    slot_ids=[new["id"] for _, new in moves],
                    hold_ids=hold_ids,
                    account_id=account_id,
                    person=person.hmac,
                    series_id=appt["series_id"],
                    idempotency_key=key,
                    now_ms=services.clock(),
                    deadline_ms=deadline,
                    expected_epoch=epoch,
                    # Each new dose may take its old hold's place in the day's "one
                    # booking per person" index: a move within the day at the same site.
                    replaces=[old["id"] for old, _ in moves],
                )
            except SeriesRefused as refused:
                raise type(refused.cause)(refused.cause.message) from None
            done = await engine.confirm(
                hold_ids=hold_ids,
                account_id=account_id,
                series_id=appt["series_id"],
                now_ms=services.clock(),
                expected_epoch=epoch,
            )
            new_rows = [
                {
                    **old,
                    "id": hold_id,
                    "slot_id": new["id"],
                    "provider_id": new["provider_id"],
                    "site_name": new["site_name"],
                    "day": local_day(new["starts_at"]),
                    "starts_at": new["starts_at"],
                    "state": "held",
                    "deadline": from_ms(held.deadline_ms),
                    "created_at": now,
                }
                for hold_id, (old, new) in zip(hold_ids, moves, strict=True)
            ]
            await store.insert_appointments(conn, new_rows)
            await _commit_confirmed(services, conn, new_rows, done.held_ms, done.confirmed_ms, now)
            moved_to = {
                old["id"]: hold_id for hold_id, (old, _) in zip(hold_ids, moves, strict=True)
            }
            await store.mark_ended(conn, list(moved_to), "moved", "rescheduled", now, moved_to)
            await store.mark_ended(
                conn, [r["id"] for r in released], "cancelled", "no fitting slot after a move", now
            )
            for old, _ in moves:
                await cancel_reminders(conn, subject=subject_of(old["id"]), at=now)
            for new_row, (old, _) in zip(new_rows, moves, strict=True):
                await record_notification(
                    conn,
                    account_id=account_id,
                    kind=NotificationKind.CHANGED,
                    subject=subject_of(old["id"]),
                    payload={
                        **_notification_payload(new_row, "changed"),
                        "moved_from": old["id"],
                        "previous_starts_at": iso(old["starts_at"]),
                    },
                    # The old booking's `cancelled` event (its place given back below)
                    # would be notified too: this key makes the move one notification.
                    dedupe_key=f"{subject_of(old['id'])}:cancelled",
                    at=now,
                )
            for r in released:
                await cancel_reminders(conn, subject=subject_of(r["id"]), at=now)
                await record_notification(
                    conn,
                    account_id=account_id,
                    kind=NotificationKind.CANCELLED,
                    subject=subject_of(r["id"]),
                    payload={
                        **_notification_payload(r, "cancelled"),
                        "released": True,
                        "reason": "no fitting slot after dose "
                        f"{appt['dose']} moved; book this dose again",
                    },
                    dedupe_key=f"{subject_of(r['id'])}:cancelled",
                    at=now,
                )
    # The new doses are confirmed and recorded: only now give the old places back.
    await _release_all(services, [old for old, _ in moves] + released, account_id, "rescheduled")
    async with services.pool.acquire() as conn:
        current = await store.appointments_of_series(conn, appt["series_id"])
    return Moved(appt["series_id"], moved_to, [r["id"] for r in released], current)


async def _first_fitting_slot(
    services: Services,
    conn: Any,
    resource_id: str,
    product: Any,
    previous: dt.date,
    dose: int,
    used_days: set[dt.date],
) -> dict[str, Any] | None:
    first, last = dose_window(previous, product, dose)
    candidates = [
        s
        for s in await store.resource_slots(conn, resource_id, first, last)
        if local_day(s["starts_at"]) not in used_days
    ]
    available = await services.slots.available([s["id"] for s in candidates])
    now_ms = services.clock()
    for s in candidates:
        if (available.get(s["id"]) or 0) > 0 and int(s["release_at"].timestamp() * 1000) <= now_ms:
            return s
    return None


def summary(rows: Sequence[dict[str, Any]], now: dt.datetime) -> str:
    """The state of a booking as a whole: the state of its live doses, else the last."""
    states = [effective_state(r["state"], r["booking_state"], r["deadline"], now) for r in rows]
    live = [s for s in states if s in LIVE_APPOINTMENT_STATES]
    return (live or states or ["unknown"])[0]
