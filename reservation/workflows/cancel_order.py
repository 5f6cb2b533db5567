"""A citizen cancels an unpaid order: its seats go back on sale, exactly once.

Only unpaid: a paid order's tickets are refunded (with the fee schedule) instead. The
cancellation counts toward the account's cancellations a day (the ``cancelled`` rows
written here, with no ``confirmed_at``, are what the rule counts). Cancelling again
answers the same and counts nothing more.
"""

from __future__ import annotations

from typing import Any

from inventory.errors import HoldNotLive
from reservation.services import Services
from reservation.workflows.epoch_fence import write_epoch
from reservation.workflows.train_orders import (
    AlreadyPaid,
    engine,
    live_hold,
    order_view,
    rows_from_hold,
    write_rows,
)


async def cancel_order(services: Services, *, account_id: str, order_id: str) -> dict[str, Any]:
    epoch = await write_epoch(services)  # before anything is read from Redis
    info = await live_hold(services, account_id, order_id)
    if info.state in ("confirmed", "changed"):
        raise AlreadyPaid(order_id=order_id)
    if info.state == "held" and info.change_of:
        raise HoldNotLive("This hold belongs to a ticket change.", state="changing")
    now = services.clock()
    if info.state == "held":
        outcome = await engine(services).cancel(
            account_id, order_id, now_ms=now, where=(info.run_id, info.seat_class)
        )
        await services.gate.release(account_id=account_id, hold_id=order_id)
        state = outcome.state
    else:
        state = info.state  # cancelled or expired already: nothing more to do
    if state != "cancelled":
        if state == "expired":
            await write_rows(
                services, rows_from_hold(services, info, "expired", at_ms=now), epoch=epoch
            )
            return await order_view(services, account_id, order_id)
        raise HoldNotLive(state=state)
    await write_rows(services, rows_from_hold(services, info, "cancelled", at_ms=now), epoch=epoch)
    return await order_view(services, account_id, order_id)
