"""A citizen pays for a held order: charge, confirm in Lua, commit the e-tickets, answer.

Always, in this order:
1. charge the fare through the payment provider with the key ``charge|<order>|<client
   key>``: a retry never charges twice; a decline leaves the order held until its
   deadline (pay again with a new Idempotency-Key); two concurrent payments with different
   keys: the one the inventory did not confirm is refunded;
2. ``SeatEngine.confirm``: held -> confirmed only while the hold is live. If it is refused
   (the deadline passed meanwhile), the charge is refunded with its own key;
3. the confirmed tickets (fare, verification code) are upserted in Postgres and COMMITTED;
4. only then does the citizen hear "paid" and see the e-tickets.
A transient Postgres error answers 503 ``store_unavailable``; the same request retried
replays steps 1 and 2 and completes 3. The seats stay the citizen's, never sold twice.
"""

from __future__ import annotations

from typing import Any

from inventory.errors import HoldExpired, HoldNotLive, InventoryError
from reservation.payments import PaymentStatus
from reservation.services import Services
from reservation.workflows.epoch_fence import write_epoch
from reservation.workflows.train_inventory import run_of
from reservation.workflows.train_orders import (
    NotPaid,
    PaymentDeclined,
    config,
    engine,
    live_hold,
    order_view,
    price_fen,
    record_payment,
    rows_from_hold,
    write_rows,
)


async def pay_order(
    services: Services, *, account_id: str, order_id: str, attempt_key: str = ""
) -> dict[str, Any]:
    """``attempt_key`` (the client's Idempotency-Key, if any) names the payment attempt: a
    retry with the same key never charges twice; after a decline, a new key tries again."""
    epoch = await write_epoch(services)  # before anything is read from Redis
    info = await live_hold(services, account_id, order_id)
    run = await run_of(services, info.run_id)
    price = price_fen(run, info.seat_class, *info.segments)
    now = services.clock()
    if info.state == "held":
        if info.change_of:  # a 改签's new hold is confirmed by the change itself
            raise NotPaid("This order is part of a ticket change.")
        provider = config(services).payments
        key = f"charge|{order_id}|{attempt_key}"
        charge = await provider.charge(order_id, price * len(info.passengers), key)
        await record_payment(services, charge, key)
        if charge.status is PaymentStatus.DECLINED:
            raise PaymentDeclined(order_id=order_id)
        try:
            done = await engine(services).confirm(account_id, order_id, now_ms=now)
        except (HoldExpired, HoldNotLive) as exc:
            back_key = f"refund-unconfirmed|{order_id}"
            back = await provider.refund(order_id, charge.amount_fen, back_key)
            await record_payment(services, back, back_key)
            services.metrics.confirms.labels("seat", exc.code).inc()
            raise
        except InventoryError as exc:
            services.metrics.confirms.labels("seat", exc.code).inc()
            raise
        if not done.changed and not charge.replay:
            # A concurrent payment with another key confirmed it first: give this one back.
            dup_key = f"refund-duplicate|{key}"
            dup = await provider.refund(order_id, charge.amount_fen, dup_key)
            await record_payment(services, dup, dup_key)
        services.metrics.confirms.labels("seat", "confirmed").inc()
    elif info.state != "confirmed":
        raise HoldNotLive(state=info.state)
    # Committed before we answer; a retry of a paid order lands here and completes it.
    await write_rows(
        services,
        rows_from_hold(services, info, "confirmed", at_ms=now, price=price),
        epoch=epoch,
    )
    # A paid hold no longer counts against the account's cap of unpaid holds. After the
    # commit: a payment the epoch fence refused leaves the hold unpaid, and counted.
    await services.gate.release(account_id=account_id, hold_id=order_id)
    return await order_view(services, account_id, order_id)
