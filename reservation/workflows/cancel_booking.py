"""A citizen cancels a hold or a paid booking: the place returns to the slot exactly once.

Never one dose of a vaccine series alone ("never dose 1 without dose 2"): such a hold is
refused (409 ``series_hold``) and the client is pointed to the vaccine route, which
cancels the whole series, last dose first, and keeps the appointments in step.
"""

from __future__ import annotations

from inventory.errors import InventoryError, NotOwner
from inventory.slot_codes import SeriesHold
from inventory.slot_engine import Released
from reservation.services import Services


async def cancel_booking(services: Services, *, account_id: str, hold_id: str) -> Released:
    view = await services.slots.read_hold(hold_id)
    if view is None or view.account_id != account_id:
        raise NotOwner()
    if view.series is not None:
        # The marker is written with the hold (slot_hold_series, or slot_restore from the
        # vaccine appointments) and never changes, so this check cannot race the release.
        services.metrics.cancels.labels("slot", SeriesHold.code).inc()
        raise SeriesHold.of(view.series)
    try:
        released = await services.slots.release(
            hold_id=hold_id,
            slot_id=view.slot_id,
            account_id=account_id,
            now_ms=services.clock(),
            state="cancelled",
            reason="citizen",
        )
    except InventoryError as exc:
        services.metrics.cancels.labels("slot", exc.code).inc()
        raise
    await services.gate.release(account_id=account_id, hold_id=hold_id)
    services.metrics.cancels.labels("slot", "replay" if released.replay else "cancelled").inc()
    return released
