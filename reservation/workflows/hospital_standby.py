"""Standby backfill (候补) for a department and day.

A patient opts into standby for (department, day). When a registration of that department
and day is cancelled or its patient is marked a no-show, its place is offered to the
waiting patients at once, in the order they joined: the first whose own rules allow it
(day gate, not already booked with that doctor) gets the place HELD for them with a
deadline (``STANDBY_FULFILLED`` notification), and confirms it or lets it expire.

Always: the freed place goes from the old registration to the standby patient in ONE
script call in the slot's shard (``hospital_slot_handover``), so open sale can never grab
it in between; only when no standby patient can take it is it released to open sale.
The waiting entries are locked (``FOR UPDATE SKIP LOCKED``) while one place is handed
over, so two places freed at once never go to the same patient.

This is the hospital's own standby, not the generic waitlist (issue 5): a standby entry
spans every doctor of a department for one day, and the place moves inside one slot.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from inventory.errors import Closed, HoldNotLive, InventoryError, NotFoundInInventory
from reservation.domain.clock import from_ms, iso, local_day, to_ms
from reservation.domain.hospital import offer_deadline
from reservation.domain.verification import verification_code
from reservation.errors import NotFound
from reservation.notifications.record import NotificationKind, record_notification
from reservation.services import Services
from reservation.store import hospital as store
from reservation.workflows.hold_slot import derive_hold_id
from reservation.workflows.hospital_common import (
    NotAllowedNow,
    drop_gates,
    now_of,
    release_place,
)


@dataclass(frozen=True, slots=True)
class Joined:
    standby_id: int
    created: bool
    position: int


async def join_standby(
    services: Services, *, account_id: str, person: str, department_id: str, day: dt.date
) -> Joined:
    now = now_of(services)
    today = local_day(now)
    if day < today or day > today + dt.timedelta(days=60):
        raise NotAllowedNow("Standby is possible for today up to 60 days ahead.", field="day")
    async with services.pool.acquire() as conn, conn.transaction():
        department = await store.get_department(conn, department_id)
        if department is None:
            raise NotFound("No such department.")
        standby_id, created = await store.join_standby(
            conn,
            account_id=account_id,
            person=person,
            provider_id=department["provider_id"],
            department_id=department_id,
            day=day,
            at=now,
        )
        mine = [
            r for r in await store.standby_of_account(conn, account_id) if r["id"] == standby_id
        ]
    return Joined(standby_id, created, int(mine[0]["position"] or 0))


async def leave_standby(services: Services, *, account_id: str, standby_id: int) -> bool:
    async with services.pool.acquire() as conn:
        row = await store.get_standby(conn, standby_id)
        if row is None or row["account_id"] != account_id:
            raise NotFound("No such standby entry.")
        return await store.end_standby(conn, standby_id, "cancelled", now_of(services))


async def free_place(services: Services, reg: dict[str, Any], *, reason: str) -> str | None:
    """The registration ends and its place is freed: to the next standby patient if one
    can take it (returns the new registration id), else to open sale (returns None)."""
    given = await _offer_to_standby(services, reg, reason=reason)
    if given is None:
        await release_place(services, reg, reason=reason)
    return given


async def _offer_to_standby(services: Services, reg: dict[str, Any], *, reason: str) -> str | None:
    async with services.pool.acquire() as conn, conn.transaction():
        waiting = await store.next_standby(conn, reg["department_id"], reg["day"])
        if not waiting:
            return None
        ctx = await store.slot_context(conn, reg["slot_id"])
        if ctx is None or ctx["session_status"] != "open":
            return None
        policy = await store.get_policy(conn, reg["provider_id"])
        for entry in waiting:
            if entry["person_hmac"] == reg["person_hmac"]:
                continue
            now_ms = services.clock()
            now = from_ms(now_ms)
            deadline = offer_deadline(now, ctx["ends_at"], policy)
            key = f"standby-{entry['id']}"
            new_id = derive_hold_id(services, reg["slot_id"], entry["account_id"], key)
            day = reg["day"].isoformat()
            try:
                await services.hospital.reserve_day(
                    person=entry["person_hmac"],
                    day=day,
                    department_id=reg["department_id"],
                    hold_id=new_id,
                    now_ms=now_ms,
                    until_ms=to_ms(deadline),
                    max_departments=policy.max_departments_per_day,
                )
            except InventoryError:
                continue  # already registered in this department, or at the daily limit
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
                await services.hospital.release_day(
                    person=entry["person_hmac"],
                    day=day,
                    department_id=reg["department_id"],
                    hold_id=new_id,
                )
                return None
            except InventoryError:
                await services.hospital.release_day(
                    person=entry["person_hmac"],
                    day=day,
                    department_id=reg["department_id"],
                    hold_id=new_id,
                )
                continue
            await drop_gates(services, reg)
            await store.insert_registration(
                conn,
                {
                    "id": new_id,
                    "provider_id": reg["provider_id"],
                    "account_id": entry["account_id"],
                    "person_hmac": entry["person_hmac"],
                    "slot_id": reg["slot_id"],
                    "session_id": reg["session_id"],
                    "department_id": reg["department_id"],
                    "doctor_id": reg["doctor_id"],
                    "day": reg["day"],
                    "starts_at": reg["starts_at"],
                    "channel": "online",
                    "origin": "standby",
                    "status": "held",
                    "verification_code": verification_code(new_id, services.secret_key),
                    "hold_deadline": deadline,
                    "created_at": now,
                },
            )
            await store.end_standby(conn, entry["id"], "fulfilled", now, new_id)
            await record_notification(
                conn,
                account_id=entry["account_id"],
                kind=NotificationKind.STANDBY_FULFILLED,
                subject=f"booking:{new_id}",
                payload={
                    "registration_id": new_id,
                    "standby_id": entry["id"],
                    "hospital": ctx["hospital_name"],
                    "department": ctx["department_name"],
                    "doctor": ctx["doctor_name"],
                    "starts_at": iso(ctx["starts_at"]),
                    "pay_by": iso(deadline),
                },
                dedupe_key=f"standby:{entry['id']}:fulfilled",
                at=now,
            )
            return new_id
    return None
