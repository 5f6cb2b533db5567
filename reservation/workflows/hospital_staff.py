"""Hospital staff at work: walk-in and phone bookings, check-in by verification code,
no-shows, and cancelling a session when the doctor is unavailable. Every action is
audited (``staff_action``, subject ``hospital:<provider>``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from inventory.errors import InventoryError, NotFoundInInventory
from reservation.auth import new_account_id
from reservation.domain.clock import iso, local_day, to_ms
from reservation.domain.hospital import may_mark_no_show, offer_deadline, pools_for
from reservation.domain.identity import InvalidIdNumber, parse_resident_id
from reservation.domain.verification import normalise, verification_code
from reservation.errors import NotFound, ValidationFailed
from reservation.fairness import audit
from reservation.notifications.record import NotificationKind
from reservation.services import Services
from reservation.store import accounts as account_store
from reservation.store import hospital as store
from reservation.workflows.hold_slot import derive_hold_id
from reservation.workflows.hospital_common import (
    NotAllowedNow,
    drop_gates,
    now_of,
    policy_of,
    release_place,
)
from reservation.workflows.hospital_register import (
    confirm_registration,
    finish_cancel,
    hold_registration,
    slot_for_booking,
)
from reservation.workflows.hospital_standby import free_place


async def _audit(services: Services, provider_id: str, actor: str, payload: dict[str, Any]) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        await audit.append(
            conn,
            audit.Kind.STAFF_ACTION,
            f"hospital:{provider_id}",
            actor,
            payload,
            at=now_of(services),
        )


async def _registration_of(services: Services, provider_id: str, reg_id: str) -> dict[str, Any]:
    async with services.pool.acquire() as conn:
        reg = await store.get_registration(conn, reg_id)
    if reg is None or reg["provider_id"] != provider_id:
        raise NotFound("No such registration at this hospital.")
    return reg


async def book_walk_in(
    services: Services,
    *,
    provider_id: str,
    slot_id: str,
    name: str,
    phone: str,
    id_number: str,
    channel: str,
    idempotency_key: str | None,
    actor: str,
) -> dict[str, Any]:
    """A booking at the counter or by phone, for the patient's own account (created if the
    patient has none): the same workflow and limits as the app, paid at the counter."""
    ctx = await slot_for_booking(services, slot_id, channel)
    if ctx["provider_id"] != provider_id:
        raise NotFound("No such hospital slot.")
    today = local_day(now_of(services))
    try:
        rid = parse_resident_id(id_number, hmac_key=services.id_hmac_key, today=today)
    except InvalidIdNumber as exc:
        raise ValidationFailed(errors=[{"field": "id_number", "message": str(exc)}]) from exc
    async with services.pool.acquire() as conn:
        account = await store.account_by_person(conn, rid.hmac_hex)
        if account is None:
            account_id = new_account_id()
            await account_store.create_account(
                conn,
                account_id=account_id,
                name=name,
                phone=phone,
                id_hmac=rid.hmac_hex,
                id_masked=rid.masked,
                birth_date=rid.birth_date,
            )
        else:
            account_id = account["id"]
    held = await hold_registration(
        services,
        account_id=account_id,
        person=rid.hmac_hex,
        slot_id=slot_id,
        channel=channel,
        idempotency_key=idempotency_key,
        origin="walk_in",
        actor=actor,
        # The counter's own address is not a citizen's: per-account and per-person rate
        # limits still apply, the address limit does not.
        client_address="",
    )
    return await confirm_registration(
        services, account_id=account_id, registration_id=held.registration_id
    )


async def check_in(
    services: Services, *, provider_id: str, code: str, actor: str
) -> dict[str, Any]:
    """Today's confirmed registration with this verification code arrives."""
    now = now_of(services)
    async with services.pool.acquire() as conn, conn.transaction():
        reg_id = await store.find_by_code(conn, provider_id, local_day(now), normalise(code))
        if reg_id is None:
            raise NotFound("No registration today with this verification code.")
        reg = await store.lock_registration(conn, reg_id)
        assert reg is not None
        if reg["status"] == "checked_in":
            return {"registration_id": reg_id, "status": "checked_in", "replay": True}
        if reg["status"] != "confirmed":
            raise NotAllowedNow(f"The registration is {reg['status']}, not confirmed.")
        await store.set_status(conn, reg_id, "checked_in", now)
        await audit.append(
            conn,
            audit.Kind.STAFF_ACTION,
            f"hospital:{provider_id}",
            actor,
            {"action": "check_in", "registration": reg_id},
            at=now,
        )
    return {"registration_id": reg_id, "status": "checked_in", "replay": False}


async def mark_no_show(
    services: Services, *, provider_id: str, registration_id: str, actor: str
) -> dict[str, Any]:
    """A confirmed patient did not come. Counts towards the no-show penalty; a place whose
    window has not ended yet is offered to standby patients (or released)."""
    reg = await _registration_of(services, provider_id, registration_id)
    now = now_of(services)
    if reg["status"] == "no_show":
        return {"registration_id": registration_id, "status": "no_show", "replay": True}
    if not may_mark_no_show(status=reg["status"], starts_at=reg["starts_at"], now=now):
        raise NotAllowedNow("Only a confirmed registration, once its time has begun.")
    async with services.pool.acquire() as conn, conn.transaction():
        locked = await store.lock_registration(conn, registration_id)
        assert locked is not None
        if locked["status"] != "confirmed":
            raise NotAllowedNow()
        await store.set_status(conn, registration_id, "no_show", now, reason="no_show")
        await store.insert_no_show(
            conn,
            registration_id=registration_id,
            account_id=reg["account_id"],
            person=reg["person_hmac"],
            at=now,
        )
        await audit.append(
            conn,
            audit.Kind.STAFF_ACTION,
            f"hospital:{provider_id}",
            actor,
            {"action": "no_show", "registration": registration_id},
            at=now,
        )
    offered_to = None
    if now < reg["ends_at"]:
        offered_to = await free_place(services, reg, reason="no_show")
    else:
        await drop_gates(services, reg)
    return {
        "registration_id": registration_id,
        "status": "no_show",
        "replay": False,
        "place_offered_to_standby": offered_to is not None,
    }


@dataclass
class SessionCancelOutcome:
    session_id: str
    affected: list[dict[str, Any]] = field(default_factory=list)


async def cancel_session(
    services: Services, *, provider_id: str, session_id: str, reason: str, actor: str
) -> SessionCancelOutcome:
    """The doctor is unavailable: the session closes, every live registration ends, and each
    patient is notified (``session_cancelled``) with the first alternative place of the same
    department (from the same day on, earliest first) HELD for them until a deadline.
    Safe to repeat: finished registrations are skipped, offers are idempotent per patient."""
    now = now_of(services)
    async with services.pool.acquire() as conn, conn.transaction():
        session = await store.get_session(conn, session_id)
        if session is None or session["provider_id"] != provider_id:
            raise NotFound("No such session at this hospital.")
        await store.cancel_session_row(conn, session_id, now, reason)
        if session["status"] == "open":
            await audit.append(
                conn,
                audit.Kind.STAFF_ACTION,
                f"hospital:{provider_id}",
                actor,
                {"action": "cancel_session", "session": session_id, "reason": reason},
                at=now,
            )
        slots = await store.session_slots(conn, session_id)
        live = await store.live_in_session(conn, session_id, now)
    for slot in slots:
        # A slot never put on sale (a crashed publication) has nothing to close.
        with contextlib.suppress(NotFoundInInventory):
            await services.hospital.close_slot(slot["slot_id"], services.clock())
    outcome = SessionCancelOutcome(session_id)
    policy = await policy_of(services, provider_id)
    for reg in live:
        await release_place(services, reg, reason="session_cancelled")
        offer = await _offer_alternative(services, reg, session, policy)
        await finish_cancel(
            services,
            reg,
            reason="session_cancelled",
            kind=NotificationKind.SESSION_CANCELLED,
            extra={"session_id": session_id, "why": reason, "offer": offer},
        )
        outcome.affected.append({"registration_id": reg["id"], "offer": offer})
    return outcome


async def _offer_alternative(
    services: Services, reg: dict[str, Any], session: dict[str, Any], policy: Any
) -> dict[str, Any] | None:
    now = now_of(services)
    async with services.pool.acquire() as conn:
        candidates = await store.alternative_slots(
            conn,
            department_id=reg["department_id"],
            from_day=session["day"],
            exclude_session=session["id"],
            channels=pools_for(reg["channel"]),
            now=now,
        )
    key = f"offer-{reg['id']}"
    for cand in candidates:
        async with services.pool.acquire() as conn:
            ctx = await store.slot_context(conn, cand["slot_id"])
        if ctx is None:
            continue
        new_id = derive_hold_id(services, cand["slot_id"], reg["account_id"], key)
        deadline = offer_deadline(now, ctx["ends_at"], policy)
        day = ctx["day"].isoformat()
        try:
            await services.hospital.reserve_day(
                person=reg["person_hmac"],
                day=day,
                department_id=reg["department_id"],
                hold_id=new_id,
                now_ms=services.clock(),
                until_ms=to_ms(deadline),
                max_departments=policy.max_departments_per_day,
            )
        except InventoryError:
            return None  # the patient already has a registration there: nothing to offer
        try:
            # The system offers it: no account cap, but every inventory rule still holds.
            await services.slots.hold(
                slot_id=cand["slot_id"],
                hold_id=new_id,
                account_id=reg["account_id"],
                person=reg["person_hmac"],
                idempotency_key=key,
                now_ms=services.clock(),
                deadline_ms=to_ms(deadline),
            )
        except InventoryError:
            await services.hospital.release_day(
                person=reg["person_hmac"],
                day=day,
                department_id=reg["department_id"],
                hold_id=new_id,
            )
            continue
        async with services.pool.acquire() as conn:
            await store.insert_registration(
                conn,
                {
                    "id": new_id,
                    "provider_id": reg["provider_id"],
                    "account_id": reg["account_id"],
                    "person_hmac": reg["person_hmac"],
                    "slot_id": cand["slot_id"],
                    "session_id": ctx["session_id"],
                    "department_id": ctx["department_id"],
                    "doctor_id": ctx["doctor_id"],
                    "day": ctx["day"],
                    "starts_at": ctx["starts_at"],
                    "channel": reg["channel"],
                    "origin": "offer",
                    "status": "held",
                    "offered_for": reg["id"],
                    "verification_code": verification_code(new_id, services.secret_key),
                    "hold_deadline": deadline,
                    "created_at": now,
                },
            )
        return {
            "registration_id": new_id,
            "slot_id": cand["slot_id"],
            "doctor": ctx["doctor_name"],
            "starts_at": iso(ctx["starts_at"]),
            "pay_by": iso(deadline),
        }
    return None
