"""A citizen withdraws a waiting waitlist order: it leaves every line at once.

Only a waiting order can be withdrawn; a fulfilled one is a hold like any other (cancel
the hold, which returns its place to the waitlist first)."""

from __future__ import annotations

from typing import Any

from reservation.domain.clock import from_ms
from reservation.errors import NotFound
from reservation.fairness import audit
from reservation.services import Services
from reservation.store import waitlist as store
from reservation.workflows.waitlist_common import NotWaiting, leave_units, order_view


async def cancel_waitlist_order(
    services: Services, account_id: str, order_id: str
) -> dict[str, Any]:
    now = from_ms(services.clock())
    async with services.pool.acquire() as conn, conn.transaction():
        order = await store.get_order(conn, order_id, lock=True)
        if order is None or order["account_id"] != account_id:
            raise NotFound("No such waitlist order.")
        if order["state"] == "cancelled":
            replay = True
        elif order["state"] != "waiting":
            raise NotWaiting(state=order["state"])
        else:
            replay = False
            await store.mark_ended(conn, order_id, "cancelled", "citizen", now)
            await audit.append(
                conn,
                audit.Kind.CANCELLATION,
                f"waitlist:{order_id}",
                f"account:{account_id}",
                {"order": order_id, "reason": "citizen"},
                at=now,
            )
    # After the commit: the filler no longer offers it anything (its state says so), and
    # leaving the units lets freed places go back on sale without waiting for it.
    await leave_units(services, order_id)
    async with services.pool.acquire() as conn:
        fresh = await store.get_order(conn, order_id)
    assert fresh is not None
    view = await order_view(services, fresh)
    view["replay"] = replay
    return view
