"""A citizen pays for a held slot: the sale is committed in Postgres before we say so.

Always: Lua moves the hold to confirmed only while it is live; then the booking row is
upserted in Postgres, fenced by the epoch (a rebuild in between refuses it: 503, retry;
see epoch_fence); only after that commit does the citizen hear "confirmed". If
Postgres is down the answer is 503 and the same request, retried, completes it (the Lua
call answers it as a replay); the place stays the citizen's and is never sold twice.
"""

from __future__ import annotations

import asyncio
import contextlib

from inventory.errors import InventoryError, NotFoundInInventory, NotOwner
from inventory.slot_engine import ConfirmedHold
from reservation.domain.bookings import BookingRow
from reservation.domain.clock import from_ms
from reservation.errors import StoreUnavailable
from reservation.services import Services
from reservation.store.db import is_transient
from reservation.workflows.epoch_fence import write_epoch


async def confirm_booking(services: Services, *, account_id: str, hold_id: str) -> ConfirmedHold:
    epoch = await write_epoch(services)  # before the Redis change (see epoch_fence)
    try:
        confirmed = await services.slots.confirm(
            hold_id=hold_id, account_id=account_id, now_ms=services.clock()
        )
    except NotFoundInInventory:
        # Answered exactly like someone else's hold: a stranger learns nothing of an id.
        services.metrics.confirms.labels("slot", "not_found").inc()
        raise NotOwner() from None
    except InventoryError as exc:
        services.metrics.confirms.labels("slot", exc.code).inc()
        raise
    row = BookingRow(
        id=hold_id,
        slot_id=confirmed.slot_id,
        account_id=account_id,
        person_hmac=confirmed.person,
        state="confirmed",
        idempotency_key=confirmed.idempotency_key,
        held_at=from_ms(confirmed.held_ms),
        deadline=from_ms(confirmed.deadline_ms),
        confirmed_at=from_ms(confirmed.confirmed_ms),
        ended_at=None,
        end_reason=None,
    )
    # Committed (with concurrent confirms, in one transaction) before we answer. A paid
    # hold no longer counts against the account's cap of unpaid holds: that Redis call
    # runs while the commit does (one wait instead of two); both must succeed before the
    # answer, and a retry after either failed redoes both (each is idempotent).
    released, committed = await asyncio.gather(
        services.gate.release(account_id=account_id, hold_id=hold_id),
        services.booking_commits.submit((row, epoch)),
        return_exceptions=True,
    )
    if isinstance(committed, BaseException):
        if not confirmed.replay and not isinstance(released, BaseException):
            # Not confirmed after all: the hold counts against the cap again until the
            # retry confirms it (best effort: it also stops counting at its deadline).
            with contextlib.suppress(Exception):
                await services.gate.reserve(
                    account_id=account_id,
                    hold_id=hold_id,
                    now_ms=services.clock(),
                    deadline_ms=confirmed.deadline_ms,
                    cap=services.settings.max_live_holds_per_account,
                )
        if isinstance(committed, Exception) and is_transient(committed):
            services.metrics.confirms.labels("slot", "store_unavailable").inc()
            raise StoreUnavailable() from committed
        raise committed
    if isinstance(released, BaseException):
        raise released
    services.metrics.confirms.labels("slot", "replay" if confirmed.replay else "confirmed").inc()
    return confirmed
