"""A citizen refunds a paid order (or its only ticket) before departure, less the fee.

Always, in this order:
1. the fee is computed from the time left before the train leaves the boarding station
   (``RefundSchedule``; at or after departure: 409 ``refund_closed``, nothing changes);
2. the seats go back on sale, exactly once (a retry is a replay): one ticket of a party
   whose others stay live with ``SeatEngine.release_one``, the rest with ``cancel``;
3. the money goes back through the provider with the key ``refund|<order>|<places>``;
4. the ticket becomes ``refunded`` with its fee in Postgres (committed), then the answer.
A retry after a failure between 2 and 4 computes the fee at the moment the seat was
released (kept on the hold's record), so it asks the provider for the same amount.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from inventory.seat_codes import InvalidSeatRequest
from reservation.domain import refunds
from reservation.domain.clock import from_ms
from reservation.errors import NotFound, StoreUnavailable
from reservation.notifications.messages import refund_note  # --- notifications
from reservation.notifications.recording import record_notes_now  # --- notifications
from reservation.services import Services
from reservation.store import bookings as booking_store
from reservation.store.db import is_transient
from reservation.store.inventory_state import fence
from reservation.workflows.epoch_fence import write_epoch
from reservation.workflows.train_inventory import run_of
from reservation.workflows.train_orders import (
    AlreadyChanged,
    NotPaid,
    RefundClosed,
    config,
    engine,
    live_hold,
    record_payment,
    split_ticket_id,
    ticket_rows,
    ticket_view,
)


@dataclass(frozen=True, slots=True)
class Refund:
    tickets: list[dict[str, Any]]  # the order's tickets, in passenger order
    fee_fen: int  # over the order's refunded tickets
    refunded_fen: int  # over the order's refunded tickets


async def refund_ticket(services: Services, *, account_id: str, ticket_id: str) -> Refund:
    """One ticket: allowed when no other ticket of its order is live (see train_orders)."""
    hold_id, n = split_ticket_id(ticket_id)
    return await refund_order(services, account_id=account_id, order_id=hold_id, only=n)


async def refund_order(
    services: Services, *, account_id: str, order_id: str, only: int | None = None
) -> Refund:
    """See :func:`_refund_order`; under the locks of the order's passengers, so a refund
    and a 改签 of the same order never interleave (PersonLocks, see change_ticket)."""
    rows = await ticket_rows(services, account_id=account_id, hold_ids=[order_id])
    people = sorted({r["person_hmac"] for r in rows})
    # The owner names this attempt: two refunds of one order at once must not share the
    # locks (person_lock.lua lets its owner take a lock again), or both would release
    # seats and record the same payment concurrently.
    owner = f"refund:{order_id}:{only}:{secrets.token_hex(8)}"
    async with services.gate.people.holding(people, owner=owner):
        return await _refund_order(services, account_id=account_id, order_id=order_id, only=only)


async def _refund_order(
    services: Services, *, account_id: str, order_id: str, only: int | None = None
) -> Refund:
    """The paid tickets of an order not refunded yet, or only its ``only``-th. While other
    tickets of the party stay live, the seat goes back alone (``SeatEngine.release_one``);
    the last live ones go back with the hold (``SeatEngine.cancel``)."""
    epoch = await write_epoch(services)  # before anything is read from Redis
    hold_id = order_id
    rows = await ticket_rows(services, account_id=account_id, hold_ids=[hold_id])
    if only is not None:
        mine = [r for r in rows if r["passenger_no"] == only]
        if not mine:
            raise NotFound("No such ticket.")
    else:
        if not rows:
            raise NotFound("No such order.")
        mine = [r for r in rows if r["state"] != "refunded"]
    if not mine or all(r["state"] == "refunded" for r in mine):
        return await _answer(services, account_id, hold_id)
    if any(r["state"] == "changed" for r in mine):
        raise AlreadyChanged(order_id=hold_id)
    if any(r["confirmed_at"] is None or r["state"] not in ("confirmed", "cancelled") for r in mine):
        raise NotPaid(order_id=hold_id, state=mine[0]["state"])
    places = sorted(r["passenger_no"] for r in mine)
    info = await live_hold(services, account_id, hold_id)
    seats = engine(services)
    gone = await seats.gone(hold_id)
    live = [p for p in range(1, len(info.passengers) + 1) if p not in gone]
    alone = any(p not in places for p in live)  # others of the party keep their seats
    if info.state == "changed":
        raise AlreadyChanged(order_id=hold_id)
    if info.state == "cancelled":
        # Released by an earlier attempt of this refund: its fee is the one of that moment.
        ended = await services.redis.hget(seats.keys.hold(hold_id), "ended")
        at_ms = int(ended) if ended is not None else services.clock()
    elif info.state == "confirmed" and alone and all(p in gone for p in places):
        at_ms = min(gone[p] for p in places)  # released by an earlier attempt
    elif info.state == "confirmed":
        at_ms = services.clock()
    else:
        raise NotPaid(order_id=hold_id, state=info.state)
    run = await run_of(services, info.run_id)
    departs = run.departure_at(info.segments[0])
    assert departs is not None
    prices = {r["passenger_no"]: int(r["price_fen"] or 0) for r in mine}
    cfg = config(services)
    try:
        fees = {
            p: cfg.refunds.fee_fen(price, departs=departs, now=from_ms(at_ms))
            for p, price in prices.items()
        }
    except refunds.RefundClosed:
        raise RefundClosed(order_id=hold_id, departed_at=departs.isoformat()) from None
    where = (info.run_id, info.seat_class)
    if info.state == "confirmed" and alone:
        for p in places:
            try:
                await seats.release_one(account_id, hold_id, p, now_ms=at_ms, where=where)
            except InvalidSeatRequest:
                # A concurrent refund took the party's other live seats: this is the last.
                await seats.cancel(account_id, hold_id, now_ms=at_ms, where=where)
    elif info.state == "confirmed":
        await seats.cancel(account_id, hold_id, now_ms=at_ms, where=where)
    key = f"refund|{hold_id}|{','.join(map(str, places))}"
    root = rows[0]["change_of"] or hold_id
    amount = sum(prices.values()) - sum(fees.values())
    back = await cfg.payments.refund(root, amount, key)
    await record_payment(services, back, key)
    fee_list = [fees.get(n) for n in range(1, max(places) + 1)]
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            await fence(conn, services.keys.prefix, epoch)
            await booking_store.mark_refunded(conn, hold_id, fee_list, from_ms(at_ms))
            # --- notifications (issue 6): the refund, with its amounts, in the same commit
            # (a paid order's seat `cancelled` event records nothing: this tells it).
            await record_notes_now(
                conn,
                [
                    refund_note(
                        account_id=account_id,
                        hold_id=hold_id,
                        places=places,
                        fee_fen=sum(fees.values()),
                        refunded_fen=amount,
                        at=from_ms(at_ms),
                    )
                ],
            )
    except Exception as exc:
        if is_transient(exc):
            raise StoreUnavailable() from exc
        raise
    return await _answer(services, account_id, hold_id)


async def _answer(services: Services, account_id: str, hold_id: str) -> Refund:
    rows = await ticket_rows(services, account_id=account_id, hold_ids=[hold_id])
    refunded = [r for r in rows if r["state"] == "refunded"]
    fee = sum(r["refund_fee_fen"] or 0 for r in refunded)
    paid = sum(r["price_fen"] or 0 for r in refunded)
    return Refund([await ticket_view(services, r) for r in rows], fee, paid - fee)
