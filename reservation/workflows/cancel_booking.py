"""A citizen cancels a hold or a paid booking: the place returns to the slot exactly once."""

from __future__ import annotations

from inventory.errors import InventoryError, NotOwner
from inventory.slot_engine import Released
from reservation.services import Services


async def cancel_booking(services: Services, *, account_id: str, hold_id: str) -> Released:
    view = await services.slots.read_hold(hold_id)
    if view is None or view.account_id != account_id:
        raise NotOwner()
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
