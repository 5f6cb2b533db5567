"""Shared by the hospital workflows (issue 6): typed refusals, the time, the policy, and
releasing a registration's place and gates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from inventory.errors import FairseatError, HoldNotLive, NotFoundInInventory
from reservation.domain.clock import from_ms
from reservation.domain.hospital import HospitalPolicy
from reservation.services import Services
from reservation.store import hospital as store


class Suspended(FairseatError):
    code = "booking_suspended"
    http_status = 409
    default_message = "Booking is suspended after repeated no-shows; see GET /v1/hospital/standing."


class CancelDeadlinePassed(FairseatError):
    code = "cancel_deadline_passed"
    http_status = 409
    default_message = (
        "The free cancellation deadline has passed: please attend, or you will be a no-show."
    )


class ChannelReserved(FairseatError):
    code = "channel_reserved"
    http_status = 409
    default_message = "This place is kept for the phone and on-site channels."


class SessionCancelled(FairseatError):
    code = "session_cancelled"
    http_status = 409
    default_message = "This session was cancelled."


class NotAllowedNow(FairseatError):
    code = "not_allowed_now"
    http_status = 409
    default_message = "The registration is not in a state that allows this."


def now_of(services: Services) -> dt.datetime:
    return from_ms(services.clock())


async def policy_of(services: Services, provider_id: str) -> HospitalPolicy:
    async with services.pool.acquire() as conn:
        return await store.get_policy(conn, provider_id)


async def release_place(services: Services, reg: dict[str, Any], *, reason: str) -> bool:
    """Give the registration's place back to the slot (open sale) and drop its gate entries.
    True if the place was released now, False if the hold had already ended."""
    released = False
    try:
        done = await services.slots.release(
            hold_id=reg["id"],
            slot_id=reg["slot_id"],
            account_id=None,
            now_ms=services.clock(),
            state="cancelled",
            reason=reason,
        )
        released = not done.replay
    except (HoldNotLive, NotFoundInInventory):
        pass
    await drop_gates(services, reg)
    return released


async def drop_gates(services: Services, reg: dict[str, Any]) -> None:
    """The registration no longer counts: not in the patient's day, not in the account cap."""
    await services.hospital.release_day(
        person=reg["person_hmac"],
        day=reg["day"].isoformat(),
        department_id=reg["department_id"],
        hold_id=reg["id"],
    )
    await services.gate.release(account_id=reg["account_id"], hold_id=reg["id"])
