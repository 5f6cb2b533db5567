"""Registering with a doctor (挂号): hold a place, pay (confirm), cancel.

The order of checks, each refusal leaving nothing behind:
1. the slot is a hospital slot of an open session, in a pool the channel may take;
2. the fairness gate every hold passes (rate limits, queue token of a queued sale);
3. the patient is not suspended for no-shows, and the daily limits as Postgres knows them
   (one read; defence in depth for the gate, which a Redis loss would empty);
4. the patient's day gate (person's shard): one registration per department per day, at
   most N departments per day — taken before the hold, given back if the hold is refused;
5. the account's cap of live unpaid holds, then ``slot_hold`` in the slot's shard (stock,
   release time, one booking per doctor per day), as for every slot.
Citizens (online) and staff booking for a walk-in or a caller (phone/on-site) go through
this same function; only the channel differs.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from inventory.errors import (
    FairseatError,
    HoldCapReached,
    InventoryError,
    NotFoundInInventory,
    SalesClosed,
)
from inventory.hospital_gate import DailyDepartmentLimit, DepartmentLimit
from inventory.slot_engine import Hold
from reservation.domain.clock import from_ms, iso, to_ms
from reservation.domain.hospital import (
    HospitalPolicy,
    Registration,
    check_daily_limits,
    day_end,
    may_cancel_registration,
    pools_for,
    reminder_at,
    standing,
)
from reservation.domain.slots import hold_deadline_ms
from reservation.domain.verification import verification_code
from reservation.errors import NotFound
from reservation.fairness import audit
from reservation.notifications.record import (
    NotificationKind,
    cancel_reminders,
    record_notification,
    schedule_reminder,
)
from reservation.services import Services
from reservation.store import hospital as store
from reservation.workflows.confirm_booking import confirm_booking
from reservation.workflows.fairness_gate import fairness_gate
from reservation.workflows.hold_slot import NOT_HELD, derive_hold_id, hold_within_cap
from reservation.workflows.hospital_common import (
    CancelDeadlinePassed,
    ChannelReserved,
    NotAllowedNow,
    SessionCancelled,
    Suspended,
    now_of,
    policy_of,
    release_place,
)

# No-show suspensions are national, not per hospital: one platform policy counts them.
DEFAULT_RULES = HospitalPolicy()


@dataclass(frozen=True, slots=True)
class Held:
    registration_id: str
    slot_id: str
    deadline: dt.datetime
    state: str
    replay: bool


def subject_of(registration_id: str) -> str:
    """The generic booking subject: the persister records ``held``/``confirmed``/
    ``cancelled`` of every slot booking under the same subject and dedupe keys
    (``booking:<id>:<state>``), so each state is recorded once, by whichever commits
    first; ours adds the hospital's words to the generic payload."""
    return f"booking:{registration_id}"


def registration_payload(ctx: dict[str, Any], registration_id: str, state: str) -> dict[str, Any]:
    """What a notification says about a registration (ids and text only, no floats)."""
    return {
        "booking_id": registration_id,
        "slot_id": ctx["slot_id"],
        "state": state,
        "registration_id": registration_id,
        "hospital": ctx["hospital_name"],
        "department": ctx["department_name"],
        "doctor": ctx["doctor_name"],
        "starts_at": iso(ctx["starts_at"]),
    }


async def check_standing_and_limits(
    services: Services,
    *,
    person: str,
    account_id: str,
    ctx: dict[str, Any],
    hold_id: str,
    policy: HospitalPolicy,
    now: dt.datetime,
) -> None:
    """Suspension, and the daily limits as Postgres knows them. The atomic check is the
    day gate in Redis; this one is defence in depth (the gate is not rebuilt after a Redis
    loss, and it costs one indexed read)."""
    async with services.pool.acquire() as conn:
        rows = await store.no_shows_of(conn, person)
        live = await store.live_departments(conn, account_id, ctx["day"], now)
    state = standing(store.as_no_shows(rows), now, DEFAULT_RULES)
    if state.suspended(now):
        assert state.suspended_until is not None
        raise Suspended(suspended_until=iso(state.suspended_until))
    existing = [Registration(dep, ctx["day"]) for rid, dep in live if rid != hold_id]
    refused = check_daily_limits(existing, Registration(ctx["department_id"], ctx["day"]), policy)
    if refused is not None:
        raise DepartmentLimit() if refused.code == "department_limit" else DailyDepartmentLimit()


async def slot_for_booking(services: Services, slot_id: str, channel: str) -> dict[str, Any]:
    async with services.pool.acquire() as conn:
        ctx = await store.slot_context(conn, slot_id)
    if ctx is None:
        raise NotFound("No such hospital slot.")
    if ctx["session_status"] != "open":
        raise SessionCancelled()
    if ctx["channel"] not in pools_for(channel):
        raise ChannelReserved()
    return ctx


async def hold_registration(
    services: Services,
    *,
    account_id: str,
    person: str,
    slot_id: str,
    channel: str,
    idempotency_key: str | None,
    origin: str = "citizen",
    actor: str | None = None,
    client_address: str = "",
    queue_token: str | None = None,
) -> Held:
    """Hold a place for ``person`` (the account's own ID HMAC). ``actor``: the staff key
    label for a walk-in (the booking is then audited as a staff action).
    ``client_address`` and ``queue_token`` feed the fairness gate, as for every hold."""
    key = idempotency_key or secrets.token_hex(16)
    ctx = await slot_for_booking(services, slot_id, channel)
    hold_id = derive_hold_id(services, slot_id, account_id, key)

    async def own_hold_exists() -> bool:
        existing = await services.slots.read_hold(hold_id)
        return existing is not None and existing.account_id == account_id

    # --- fairness (issue 5): rate limits and queued sales, before any rule or stock
    gate = await fairness_gate(
        services,
        account_id=account_id,
        persons=[person],
        client_address=client_address,
        queue_token=queue_token,
        sale=await services.waiting_room.sale_for_slot(slot_id),
        is_replay=own_hold_exists,
    )
    try:
        hold = await _hold_within_rules(
            services, ctx=ctx, account_id=account_id, person=person, hold_id=hold_id, key=key
        )
    except FairseatError as exc:
        await gate.refused(exc)
        if isinstance(exc, InventoryError):
            services.metrics.holds.labels("slot", exc.code).inc()
        raise
    await gate.held(1, replay=hold.replay)
    services.metrics.holds.labels("slot", "replay" if hold.replay else "held").inc()
    now = from_ms(services.clock())
    deadline = from_ms(hold.deadline_ms)
    async with services.pool.acquire() as conn, conn.transaction():
        created = await store.insert_registration(
            conn,
            {
                "id": hold_id,
                "provider_id": ctx["provider_id"],
                "account_id": account_id,
                "person_hmac": person,
                "slot_id": slot_id,
                "session_id": ctx["session_id"],
                "department_id": ctx["department_id"],
                "doctor_id": ctx["doctor_id"],
                "day": ctx["day"],
                "starts_at": ctx["starts_at"],
                "channel": channel,
                "origin": origin,
                "status": "held",
                "verification_code": verification_code(hold_id, services.secret_key),
                "hold_deadline": deadline,
                "created_at": now,
            },
        )
        if created:
            await record_notification(
                conn,
                account_id=account_id,
                kind=NotificationKind.HELD,
                subject=subject_of(hold_id),
                payload={**registration_payload(ctx, hold_id, "held"), "pay_by": iso(deadline)},
                dedupe_key=f"booking:{hold_id}:held",
                at=now,
            )
            if actor is not None:
                await audit.append(
                    conn,
                    audit.Kind.STAFF_ACTION,
                    f"hospital:{ctx['provider_id']}",
                    actor,
                    {"action": "book", "registration": hold_id, "channel": channel},
                    at=now,
                )
    return Held(hold_id, slot_id, deadline, hold.state, hold.replay)


async def _hold_within_rules(
    services: Services,
    *,
    ctx: dict[str, Any],
    account_id: str,
    person: str,
    hold_id: str,
    key: str,
) -> Hold:
    """Suspension and daily limits, the day gate, then the account cap and the slot."""
    slot_id = ctx["slot_id"]
    now_ms = services.clock()
    now = from_ms(now_ms)
    policy = await policy_of(services, ctx["provider_id"])
    await check_standing_and_limits(
        services,
        person=person,
        account_id=account_id,
        ctx=ctx,
        hold_id=hold_id,
        policy=policy,
        now=now,
    )
    deadline_ms = hold_deadline_ms(
        now_ms, services.settings.slot_hold_seconds, to_ms(ctx["ends_at"])
    )
    day = ctx["day"].isoformat()
    await services.hospital.reserve_day(
        person=person,
        day=day,
        department_id=ctx["department_id"],
        hold_id=hold_id,
        now_ms=now_ms,
        until_ms=deadline_ms,
        max_departments=policy.max_departments_per_day,
    )
    try:
        hold = await hold_within_cap(
            services.slots,
            services.gate,
            slot_id=slot_id,
            hold_id=hold_id,
            account_id=account_id,
            person=person,
            idempotency_key=key,
            now_ms=now_ms,
            deadline_ms=deadline_ms,
            cap=services.settings.max_live_holds_per_account,
        )
    except (*NOT_HELD, HoldCapReached, SalesClosed):
        # Refused before any write: no hold has this id, so it must not count in the
        # patient's day. Other failures (a lost reply, a reused key naming another hold)
        # keep the entry: stricter until its deadline, never looser.
        await services.hospital.release_day(
            person=person, day=day, department_id=ctx["department_id"], hold_id=hold_id
        )
        raise
    if hold.state in ("cancelled", "expired"):
        await services.hospital.release_day(
            person=person, day=day, department_id=ctx["department_id"], hold_id=hold_id
        )
    return hold


async def owned_registration(
    services: Services, registration_id: str, account_id: str | None
) -> dict[str, Any]:
    """The registration, or 404 for an unknown id and for someone else's alike."""
    async with services.pool.acquire() as conn:
        reg = await store.get_registration(conn, registration_id)
    if reg is None or (account_id is not None and reg["account_id"] != account_id):
        raise NotFound("No such registration.")
    return reg


async def confirm_registration(
    services: Services, *, account_id: str, registration_id: str
) -> dict[str, Any]:
    """Pay the registration fee (simulated): the sale is committed before we say so; the
    day gate entry then lasts the whole day; a reminder is scheduled for the day before."""
    reg = await owned_registration(services, registration_id, account_id)
    confirmed = await confirm_booking(services, account_id=account_id, hold_id=registration_id)
    now = now_of(services)
    policy = await policy_of(services, reg["provider_id"])
    await services.hospital.reserve_day(
        person=reg["person_hmac"],
        day=reg["day"].isoformat(),
        department_id=reg["department_id"],
        hold_id=registration_id,
        now_ms=services.clock(),
        until_ms=to_ms(day_end(reg["day"])),
        max_departments=policy.max_departments_per_day,
    )
    ctx = {**reg, "slot_id": reg["slot_id"]}
    async with services.pool.acquire() as conn, conn.transaction():
        locked = await store.lock_registration(conn, registration_id)
        assert locked is not None
        if locked["status"] == "held":
            confirmed_at = from_ms(confirmed.confirmed_ms)
            await store.set_status(conn, registration_id, "confirmed", confirmed_at)
            payload = {
                **registration_payload(ctx, registration_id, "confirmed"),
                "verification_code": reg["verification_code"],
            }
            await record_notification(
                conn,
                account_id=account_id,
                kind=NotificationKind.CONFIRMED,
                subject=subject_of(registration_id),
                payload=payload,
                dedupe_key=f"booking:{registration_id}:confirmed",
                at=confirmed_at,
            )
            lead = dt.timedelta(seconds=services.settings.notify_reminder_lead_s)
            remind = reminder_at(reg["starts_at"], now, lead)
            if remind is not None:
                await schedule_reminder(
                    conn,
                    account_id=account_id,
                    subject=subject_of(registration_id),
                    remind_at=remind,
                    payload=payload,
                    dedupe_key=f"booking:{registration_id}:reminder",
                )
    return await owned_registration(services, registration_id, account_id)


async def cancel_registration(
    services: Services, *, account_id: str, registration_id: str
) -> dict[str, Any]:
    """A citizen cancels: an unpaid hold at any time, a paid registration only before the
    hospital's deadline (default 15:00 the day before); after it the answer is 409
    ``cancel_deadline_passed`` (refused, not penalised: the patient may still come). The
    freed place goes to the department's standby patients first."""
    from reservation.workflows.hospital_standby import free_place

    reg = await owned_registration(services, registration_id, account_id)
    if reg["status"] == "cancelled":
        return reg
    if reg["status"] not in ("held", "confirmed"):
        raise NotAllowedNow()
    live = await services.slots.read_hold(registration_id)
    if live is not None and live.state == "cancelled":
        # Freed in Redis by an earlier attempt whose Postgres side did not commit (a crash
        # or an outage in between): this retry completes it.
        await finish_cancel(services, reg, reason="citizen", kind=NotificationKind.CANCELLED)
        return await owned_registration(services, registration_id, account_id)
    if live is not None and live.state == "expired":
        raise NotAllowedNow("This registration has already ended.")
    now = now_of(services)
    policy = await policy_of(services, reg["provider_id"])
    paid = reg["status"] == "confirmed" or (live is not None and live.state == "confirmed")
    if not may_cancel_registration(confirmed=paid, day=reg["day"], now=now, policy=policy):
        raise CancelDeadlinePassed()
    await free_place(services, reg, reason="citizen")
    await finish_cancel(services, reg, reason="citizen", kind=NotificationKind.CANCELLED)
    return await owned_registration(services, registration_id, account_id)


async def finish_cancel(
    services: Services,
    reg: dict[str, Any],
    *,
    reason: str,
    kind: NotificationKind,
    extra: dict[str, Any] | None = None,
) -> None:
    """Postgres side of a cancellation: status, notification, reminders cancelled."""
    now = now_of(services)
    async with services.pool.acquire() as conn, conn.transaction():
        locked = await store.lock_registration(conn, reg["id"])
        if locked is None or locked["status"] not in ("held", "confirmed"):
            return
        await store.set_status(conn, reg["id"], "cancelled", now, reason=reason)
        await record_notification(
            conn,
            account_id=reg["account_id"],
            kind=kind,
            subject=subject_of(reg["id"]),
            payload={
                "booking_id": reg["id"],
                "slot_id": reg["slot_id"],
                "state": "cancelled",
                "reason": reason,
                "registration_id": reg["id"],
                **(extra or {}),
            },
            # A plain cancellation is the generic ``cancelled`` (recorded once, whoever
            # commits first); a session cancellation is its own notice, with the offer.
            dedupe_key=f"booking:{reg['id']}:cancelled"
            if kind == NotificationKind.CANCELLED
            else f"registration:{reg['id']}:{kind}",
            at=now,
        )
        await cancel_reminders(conn, subject=subject_of(reg["id"]), at=now)


async def expire_stale(services: Services, reg: dict[str, Any]) -> str:
    """The registration's state as the citizen should see it: a 'held' row whose hold the
    inventory expired (or lost) reads 'expired'."""
    if reg["status"] != "held":
        return str(reg["status"])
    try:
        live = await services.slots.read_hold(reg["id"])
    except NotFoundInInventory:
        return "expired"
    if live is None:
        return str(reg.get("booking_state") or "expired")
    if live.state == "held" and live.deadline_ms <= services.clock():
        return "expired"
    return live.state


__all__ = [
    "Held",
    "cancel_registration",
    "confirm_registration",
    "hold_registration",
    "release_place",
]
