"""Standby (候补) for hospital registration: a department or one doctor, over a day range,
until a deadline (issue 5).

A patient joins standby for a department (any of its doctors) or one doctor, from a first
to a last day (at most ``MAX_STANDBY_DAYS``), until a deadline (at most the end of the last
day). Places of those doctors and days that come back are offered to the waiting patients
in the order they joined; the first whose own rules allow it (not suspended, the day gate:
one registration per department and day and at most 3 departments a day, not already
booked with that doctor) gets the place HELD for them with a deadline, as a hospital
registration (verification code, ``STANDBY_FULFILLED``), and confirms it or lets it
expire. Only the online pool is ever offered: the counter share stays the counter's.

Two ways a place comes back, both before open sale:
- **cancelled by its patient, or a no-show** (``free_place``): the place moves from the old
  registration to the standby patient in ONE script call in the slot's shard
  (``hospital_slot_handover``); only when nobody can take it is it released, the generic
  way (into cooling, below);
- **any other release** (an expired unpaid hold, a release nobody on standby could take at
  once, a new slot): the generic waitlist's cooling (docs/waitlist.md) keeps the place
  off open sale while somebody waits on its (resource, day) unit. Standby entries are
  enrolled on the units of their doctors' online resources and days (member ``hs<id>``),
  and the waitlist filler offers hospital pieces here first (``offer_piece``), through
  ``slot_transfer``: the unit's generation makes an uncool refused whenever an entry was
  enrolled after the filler read its line.

The waiting entries are locked (``FOR UPDATE SKIP LOCKED``) while a place is offered, so
two places freed at once never go to the same patient.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from inventory.errors import Closed, HoldNotLive, InventoryError, NotFoundInInventory
from inventory.waitlist_keys import slot_unit
from reservation.domain.clock import CHINA, from_ms, iso, local_day, to_ms
from reservation.domain.hospital import HospitalPolicy, offer_deadline, standing
from reservation.domain.verification import verification_code
from reservation.errors import FairseatError, NotFound
from reservation.fairness import audit
from reservation.notifications.record import NotificationKind, record_notification
from reservation.services import Services
from reservation.store import hospital as store
from reservation.workflows.hold_slot import derive_hold_id
from reservation.workflows.hospital_common import (
    NotAllowedNow,
    Suspended,
    drop_gates,
    now_of,
    release_place,
)
from reservation.workflows.waitlist_common import freeing

MAX_STANDBY_DAYS = 7
MAX_DAYS_AHEAD = 60
# No-show suspensions are national, not per hospital (as in hospital_register).
PLATFORM_RULES = HospitalPolicy()
ACTOR = "hospital_standby"


class BadStandby(FairseatError):
    code = "bad_standby"
    http_status = 422
    default_message = "This standby request is not valid."


@dataclass(frozen=True, slots=True)
class Joined:
    standby_id: int
    created: bool
    position: int


def member(standby_id: int) -> str:
    """The entry's name on a waitlist unit (generic orders are ``w…``)."""
    return f"hs{standby_id}"


def _end_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), CHINA)


async def _suspended(services: Services, person: str, now: dt.datetime) -> dt.datetime | None:
    async with services.pool.acquire() as conn:
        rows = await store.no_shows_of(conn, person)
    state = standing(store.as_no_shows(rows), now, PLATFORM_RULES)
    return state.suspended_until if state.suspended(now) else None


async def join_standby(
    services: Services,
    *,
    account_id: str,
    person: str,
    department_id: str,
    day: dt.date,
    last_day: dt.date | None = None,
    doctor_id: str | None = None,
    deadline: dt.datetime | None = None,
) -> Joined:
    now = now_of(services)
    today = local_day(now)
    last = last_day or day
    if day < today or last > today + dt.timedelta(days=MAX_DAYS_AHEAD):
        raise NotAllowedNow("Standby is possible for today up to 60 days ahead.", field="day")
    if last < day or (last - day).days >= MAX_STANDBY_DAYS:
        raise BadStandby(
            f"A standby spans 1 to {MAX_STANDBY_DAYS} days.", field="last_day", max=MAX_STANDBY_DAYS
        )
    until = deadline or _end_of(last)
    if until <= now or until > _end_of(last):
        raise BadStandby(
            "The deadline must be in the future and not after the last day.", field="deadline"
        )
    suspended = await _suspended(services, person, now)
    if suspended is not None:
        raise Suspended(suspended_until=iso(suspended))
    async with services.pool.acquire() as conn, conn.transaction():
        department = await store.get_department(conn, department_id)
        if department is None:
            raise NotFound("No such department.")
        if doctor_id is not None:
            found = await conn.fetchval(
                "SELECT department_id FROM hospital_doctors WHERE id = $1", doctor_id
            )
            if found != department_id:
                raise NotFound("No such doctor in this department.", field="doctor_id")
        standby_id, created = await store.join_standby(
            conn,
            account_id=account_id,
            person=person,
            provider_id=department["provider_id"],
            department_id=department_id,
            day=day,
            last_day=last,
            doctor_id=doctor_id,
            deadline=until,
            at=now,
        )
    # Committed first, enrolled second: a filler that read the line before this entry
    # existed finds the unit's generation changed and keeps the place in cooling.
    await _enroll(services, [standby_id])
    async with services.pool.acquire() as conn:
        mine = [
            r for r in await store.standby_of_account(conn, account_id) if r["id"] == standby_id
        ]
    return Joined(standby_id, created, int(mine[0]["position"] or 0))


async def _enroll(services: Services, standby_ids: list[int], *, leave: bool = False) -> None:
    async with services.pool.acquire() as conn:
        rows = await store.standby_units(conn, standby_ids)
    wl = freeing(services)
    for r in rows:
        await wl.enroll(
            slot_unit(r["resource_id"], r["day"].isoformat()), member(r["id"]), leave=leave
        )


async def reenroll_all(services: Services) -> None:
    """Every waiting entry on its units again (idempotent): after a Redis loss, a crash
    between an entry's commit and its enrolment, or a doctor added to the department."""
    async with services.pool.acquire() as conn:
        rows = await store.standby_units(conn)
    wl = freeing(services)
    for r in rows:
        await wl.enroll(slot_unit(r["resource_id"], r["day"].isoformat()), member(r["id"]))


async def leave_standby(services: Services, *, account_id: str, standby_id: int) -> bool:
    async with services.pool.acquire() as conn:
        row = await store.get_standby(conn, standby_id)
        if row is None or row["account_id"] != account_id:
            raise NotFound("No such standby entry.")
        left = await store.end_standby(conn, standby_id, "cancelled", now_of(services))
    await _enroll(services, [standby_id], leave=True)
    return left


async def end_due(services: Services, limit: int = 500) -> int:
    """Entries whose deadline passed end (``WAITLIST_ENDED``) and leave their units."""
    now = now_of(services)
    async with services.pool.acquire() as conn:
        due = await store.due_standby(conn, now, limit)
    ended = 0
    for entry in due:
        async with services.pool.acquire() as conn, conn.transaction():
            if not await store.end_standby(conn, entry["id"], "ended", now):
                continue
            await record_notification(
                conn,
                account_id=entry["account_id"],
                kind=NotificationKind.WAITLIST_ENDED,
                subject=f"standby:{entry['id']}",
                payload={"standby_id": entry["id"], "reason": "deadline"},
                dedupe_key=f"standby:{entry['id']}:ended",
                at=now,
            )
        await _enroll(services, [entry["id"]], leave=True)
        ended += 1
    return ended


async def settle_orphans(services: Services) -> int:
    """Finish the standby places a crash left half-given: the place was handed over or
    transferred in Redis (the booking is live, its key names the entry) but the
    transaction recording it (the registration, the entry fulfilled, the notification, the
    audit) never committed. Until then the patient held a place they were never told of.
    Meanwhile the entry got no other place that department and day: its day gate counts
    the orphan hold. Returns how many were finished."""
    async with services.pool.acquire() as conn:
        orphans = await store.orphaned_standby_holds(conn)
    settled: list[int] = []
    for o in orphans:
        async with services.pool.acquire() as conn, conn.transaction():
            entry = await store.lock_waiting_standby(conn, o["standby_id"])
            ctx = await store.slot_context(conn, o["slot_id"])
            if entry is None or ctx is None:
                continue
            await _record(
                services,
                conn,
                entry,
                ctx,
                new_id=o["hold_id"],
                deadline=o["deadline"],
                source="recovered",
            )
        settled.append(int(o["standby_id"]))
    if settled:
        await _enroll(services, settled, leave=True)
    return len(settled)


async def free_place(services: Services, reg: dict[str, Any], *, reason: str) -> str | None:
    """The registration ends and its place is freed: to the next standby patient if one
    can take it (returns the new registration id), else released (returns None): into
    cooling, where the filler offers it to standby again before open sale."""
    given = await _offer_to_standby(services, reg, reason=reason)
    if given is None:
        await release_place(services, reg, reason=reason)
    return given


async def _reserve_day(
    services: Services,
    entry: dict[str, Any],
    ctx: dict[str, Any],
    policy: HospitalPolicy,
    hold_id: str,
    now_ms: int,
    until: dt.datetime,
) -> bool:
    """The patient's own rules: not suspended, the day gate (department, 3 a day)."""
    if await _suspended(services, entry["person_hmac"], from_ms(now_ms)) is not None:
        return False
    try:
        await services.hospital.reserve_day(
            person=entry["person_hmac"],
            day=ctx["day"].isoformat(),
            department_id=ctx["department_id"],
            hold_id=hold_id,
            now_ms=now_ms,
            until_ms=to_ms(until),
            max_departments=policy.max_departments_per_day,
        )
    except InventoryError:
        return False  # already registered in this department, or at the daily limit
    return True


async def _release_day(
    services: Services, entry: dict[str, Any], ctx: dict[str, Any], hold_id: str
) -> None:
    await services.hospital.release_day(
        person=entry["person_hmac"],
        day=ctx["day"].isoformat(),
        department_id=ctx["department_id"],
        hold_id=hold_id,
    )


async def _record(
    services: Services,
    conn: Any,
    entry: dict[str, Any],
    ctx: dict[str, Any],
    *,
    new_id: str,
    deadline: dt.datetime,
    source: str,
) -> None:
    """The held registration, the entry fulfilled, STANDBY_FULFILLED, the allocation
    audited: one transaction (``conn``'s)."""
    now = now_of(services)
    await store.insert_registration(
        conn,
        {
            "id": new_id,
            "provider_id": ctx["provider_id"],
            "account_id": entry["account_id"],
            "person_hmac": entry["person_hmac"],
            "slot_id": ctx["slot_id"],
            "session_id": ctx["session_id"],
            "department_id": ctx["department_id"],
            "doctor_id": ctx["doctor_id"],
            "day": ctx["day"],
            "starts_at": ctx["starts_at"],
            "channel": "online",
            "origin": "standby",
            "status": "held",
            "verification_code": verification_code(new_id, services.secret_key),
            "hold_deadline": deadline,
            "created_at": now,
        },
    )
    await store.end_standby(conn, entry["id"], "fulfilled", now, new_id)
    payload = {
        "registration_id": new_id,
        "standby_id": entry["id"],
        "hospital": ctx["hospital_name"],
        "department": ctx["department_name"],
        "doctor": ctx["doctor_name"],
        "starts_at": iso(ctx["starts_at"]),
        "pay_by": iso(deadline),
    }
    await record_notification(
        conn,
        account_id=entry["account_id"],
        kind=NotificationKind.STANDBY_FULFILLED,
        subject=f"booking:{new_id}",
        payload=payload,
        dedupe_key=f"standby:{entry['id']}:fulfilled",
        at=now,
    )
    await audit.append(
        conn,
        audit.Kind.ALLOCATION,
        f"standby:{entry['id']}",
        ACTOR,
        {**payload, "source": source},
        at=now,
    )


async def _offer_to_standby(services: Services, reg: dict[str, Any], *, reason: str) -> str | None:
    given: tuple[str, int] | None = None
    async with services.pool.acquire() as conn, conn.transaction():
        ctx = await store.slot_context(conn, reg["slot_id"])
        # The counter's share is never offered online: it is released the generic way.
        if ctx is None or ctx["session_status"] != "open" or ctx["channel"] != "online":
            return None
        now_ms = services.clock()
        waiting = await store.next_standby(
            conn, reg["department_id"], reg["day"], ctx["doctor_id"], from_ms(now_ms)
        )
        if not waiting:
            return None
        policy = await store.get_policy(conn, reg["provider_id"])
        for entry in waiting:
            if entry["person_hmac"] == reg["person_hmac"]:
                continue
            now_ms = services.clock()
            deadline = offer_deadline(from_ms(now_ms), ctx["ends_at"], policy)
            key = f"standby-{entry['id']}"
            new_id = derive_hold_id(services, reg["slot_id"], entry["account_id"], key)
            if not await _reserve_day(services, entry, ctx, policy, new_id, now_ms, deadline):
                continue
            try:
                await services.hospital.handover(
                    old_hold_id=reg["id"],
                    slot_id=reg["slot_id"],
                    reason=reason,
                    new_hold_id=new_id,
                    new_account_id=entry["account_id"],
                    new_person=entry["person_hmac"],
                    deadline_ms=to_ms(deadline),
                    idempotency_key=key,
                    now_ms=now_ms,
                )
            except (HoldNotLive, Closed, NotFoundInInventory):
                # The old place is gone (ended already) or the slot is over: nothing to give.
                await _release_day(services, entry, ctx, new_id)
                return None
            except InventoryError:
                await _release_day(services, entry, ctx, new_id)
                continue
            await drop_gates(services, reg)
            await _record(
                services, conn, entry, ctx, new_id=new_id, deadline=deadline, source=reason
            )
            given = (new_id, int(entry["id"]))
            break
    if given is None:
        return None
    await _enroll(services, [given[1]], leave=True)
    return given[0]


async def offer_piece(services: Services, *, slot_id: str, piece_id: str) -> bool:
    """The filler's hook: a place of a hospital slot in cooling (``piece_id``; '' for an
    open place) goes to the first standby patient whose rules allow it. True if given."""
    given: int | None = None
    async with services.pool.acquire() as conn, conn.transaction():
        ctx = await store.slot_context(conn, slot_id)
        if ctx is None or ctx["session_status"] != "open" or ctx["channel"] != "online":
            return False
        now_ms = services.clock()
        waiting = await store.next_standby(
            conn, ctx["department_id"], ctx["day"], ctx["doctor_id"], from_ms(now_ms)
        )
        policy = await store.get_policy(conn, ctx["provider_id"])
        for entry in waiting:
            deadline = offer_deadline(from_ms(now_ms), ctx["ends_at"], policy)
            key = f"standby-{entry['id']}"
            new_id = derive_hold_id(services, slot_id, entry["account_id"], key)
            if not await _reserve_day(services, entry, ctx, policy, new_id, now_ms, deadline):
                continue
            try:
                await freeing(services).transfer_slot(
                    services.slots,
                    piece_id=piece_id,
                    slot_id=slot_id,
                    hold_id=new_id,
                    account_id=entry["account_id"],
                    person=entry["person_hmac"],
                    deadline_ms=to_ms(deadline),
                    order_id=member(entry["id"]),
                    now_ms=now_ms,
                )
            except InventoryError:
                # Already with this doctor that day, or the piece is gone: the next one.
                await _release_day(services, entry, ctx, new_id)
                continue
            await _record(
                services, conn, entry, ctx, new_id=new_id, deadline=deadline, source="cooling"
            )
            given = int(entry["id"])
            break
    if given is None:
        return False
    await _enroll(services, [given], leave=True)
    return True
