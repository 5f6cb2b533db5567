"""改签: a citizen moves a paid order (or its only ticket), once, to another run of the
same route.

The route is the ticket's own boarding and alighting stations; any train serving both (in
that order) qualifies, on any date on sale. Always, in this order:
1. a higher fare: the difference is charged first (key ``change-charge|<new order>``); a
   decline changes nothing;
2. ``SeatEngine.change``: the new seat is held and the old one released as ``changed`` in
   idempotent steps decided at the old ticket, so the passenger holds the old seat, the
   new one, or both for a moment, never neither; each seat-segment goes back exactly once.
   If the inventory refuses (sold out...), a charged difference is refunded;
3. a lower fare: the difference goes back (key ``change-refund|<new order>``);
4. the old ticket (``changed``) and the new one (``confirmed``, with its verification code
   and fare) are committed in Postgres, then the answer.
Retrying with the same Idempotency-Key after any failure completes the same change: every
step above is a replay the second time. A ticket that came from a change cannot change again.
"""

from __future__ import annotations

import secrets
from typing import Any

from inventory.errors import InventoryError
from reservation.errors import NotFound
from reservation.payments import PaymentStatus
from reservation.services import Services
from reservation.workflows.epoch_fence import write_epoch
from reservation.workflows.hold_tickets import check_class, check_overlaps, trip
from reservation.workflows.train_inventory import (
    ensure_run_loaded,
    get_run,
    require_on_sale,
    run_of,
)
from reservation.workflows.train_orders import (
    AlreadyChanged,
    NotPaid,
    NotSameRoute,
    PaymentDeclined,
    WholeOrderOnly,
    config,
    engine,
    hold_deadline_ms,
    live_hold,
    order_key,
    order_view,
    price_fen,
    record_payment,
    rows_from_hold,
    split_ticket_id,
    ticket_rows,
    write_rows,
)


async def change_ticket(
    services: Services,
    *,
    account_id: str,
    ticket_id: str,
    run_id: str,
    seat_class: str | None = None,
    wish: str = "",
    idempotency_key: str | None,
) -> dict[str, Any]:
    """One ticket: allowed when it is its order's only ticket (see train_orders)."""
    hold_id, n = split_ticket_id(ticket_id)
    return await change_order(
        services,
        account_id=account_id,
        order_id=hold_id,
        only=n,
        run_id=run_id,
        seat_class=seat_class,
        wish=wish,
        idempotency_key=idempotency_key,
    )


async def change_order(
    services: Services,
    *,
    account_id: str,
    order_id: str,
    only: int | None = None,
    run_id: str,
    seat_class: str | None = None,
    wish: str = "",
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Every ticket of a paid order moves together (seats side by side when possible)."""
    epoch = await write_epoch(services)  # before anything is read from Redis
    hold_id = order_id
    rows = await ticket_rows(services, account_id=account_id, hold_ids=[hold_id])
    if not rows or (only is not None and all(r["passenger_no"] != only for r in rows)):
        raise NotFound("No such ticket." if only else "No such order.")
    seats = engine(services)
    cfg = config(services)
    key = order_key(
        services, account_id, idempotency_key or secrets.token_hex(16), f"change|{hold_id}"
    )
    new_id = seats.keys.hold_id(run_id, account_id, key)
    info = await live_hold(services, account_id, hold_id)
    if rows[0]["change_of"] or info.change_of:
        raise AlreadyChanged("A ticket that came from a change cannot change again.")
    if info.state == "changed" and info.changed_to != new_id:
        raise AlreadyChanged(order_id=hold_id, changed_to=info.changed_to)
    if info.state not in ("confirmed", "changed"):
        raise NotPaid(order_id=hold_id, state=info.state)
    # Every passenger of the order, before reading which seats were refunded alone: a
    # concurrent per-ticket refund takes the same locks (PersonLocks), so the change
    # never moves a seat refunded meanwhile, and the overlap check, the new seats and
    # their rows are one step per person.
    async with services.gate.people.holding(info.passengers, owner=new_id):
        gone = await seats.gone(hold_id)  # refunded one by one: they stay where they are
        places = [p for p in range(1, len(info.passengers) + 1) if p not in gone]
        if only is not None and places != [only]:
            raise WholeOrderOnly(order_id=hold_id)

        old_run = await run_of(services, info.run_id)
        new_run, status = await get_run(services, run_id)
        a0, b0 = info.segments
        origin, destination = old_run.train.stops[a0].station, old_run.train.stops[b0].station
        segment = new_run.train.segment(origin, destination)
        if segment is None or new_run.run_id == old_run.run_id:
            raise NotSameRoute(
                f"Run {run_id} does not serve {origin} -> {destination}.",
                errors=[{"field": "run_id", "message": "another run serving the same stations"}],
            )
        a, b = segment
        cls = seat_class or info.seat_class
        await check_class(services, new_run, cls)
        people = [info.passengers[p - 1] for p in places]
        if info.state == "confirmed":  # not yet committed: the full rules apply
            require_on_sale(services, new_run, a, status)
            await check_overlaps(
                services,
                people,
                trip(new_run, a, b),
                ignore_holds={hold_id, new_id},
                labels=[f"{hold_id}.{p}" for p in places],
            )
        count = len(places)
        live_rows = [r for r in rows if r["passenger_no"] in places]
        old_price = int(live_rows[0]["price_fen"] or price_fen(old_run, info.seat_class, a0, b0))
        new_price = price_fen(new_run, cls, a, b)
        diff = (new_price - old_price) * count
        provider = cfg.payments
        if diff > 0:
            charge_key = f"change-charge|{new_id}"
            charge = await provider.charge(hold_id, diff, charge_key)
            await record_payment(services, charge, charge_key)
            if charge.status is PaymentStatus.DECLINED:
                raise PaymentDeclined(order_id=hold_id)
        now = services.clock()
        departs = new_run.departure_at(a)
        assert departs is not None
        await ensure_run_loaded(services, new_run)
        try:
            await seats.change(
                account_id,
                hold_id,
                new_run.run_id,
                cls,
                a,
                b,
                idempotency_key=key,
                wish=wish,
                deadline_ms=hold_deadline_ms(cfg, now, departs),
                now_ms=now,
            )
        except InventoryError:
            if diff > 0:
                undo_key = f"change-undo|{new_id}"
                undo = await provider.refund(hold_id, diff, undo_key)
                await record_payment(services, undo, undo_key)
            raise
        if diff < 0:
            back_key = f"change-refund|{new_id}"
            back = await provider.refund(hold_id, -diff, back_key)
            await record_payment(services, back, back_key)
        new_info = await live_hold(services, account_id, new_id)
        old_info = await live_hold(services, account_id, hold_id)
        await write_rows(
            services,
            [
                *rows_from_hold(
                    services, old_info, "changed", at_ms=now, changed_to=new_id, skip=gone
                ),
                *rows_from_hold(
                    services, new_info, "confirmed", at_ms=now, price=new_price, change_of=hold_id
                ),
            ],
            epoch=epoch,
        )
        return await order_view(services, account_id, new_id)
