"""A waitlist order gets a place: it becomes a normal hold with a payment deadline.

Steps, each safe to repeat (the filler may crash anywhere):
1. the hold the order is about to get is written to the order (``offer_hold_id``,
   committed): its id derives from the order and the choice, so a retry names it again;
2. one Lua call makes the hold from cooling pieces or an open place
   (``slot_transfer`` / ``seat_transfer``, or ``seat_hold`` for seats on open sale);
3. trains: the held tickets are written (as ``hold_tickets`` does);
4. one transaction: the order is fulfilled, WAITLIST_FULFILLED is recorded and the
   allocation is audited;
5. the order leaves every unit it waited on.
A crash after 2 leaves a waiting order with an offer: :func:`settle_offer` looks the hold
up and finishes 3-5, or clears the offer if the hold was never made.
"""

from __future__ import annotations

from typing import Any

from inventory.errors import InventoryError
from inventory.seat_model import hold_fingerprint
from inventory.slot_engine import Hold
from reservation.domain.clock import from_ms, iso
from reservation.domain.slots import hold_deadline_ms as slot_deadline_ms
from reservation.services import Services
from reservation.store import waitlist as store
from reservation.workflows.epoch_fence import write_epoch
from reservation.workflows.hold_slot import derive_hold_id
from reservation.workflows.hold_tickets import check_overlaps, trip
from reservation.workflows.train_inventory import (
    ensure_run_loaded,
    get_run,
    require_on_sale,
    run_of,
)
from reservation.workflows.train_orders import (
    config,
    engine,
    hold_deadline_ms,
    order_key,
    price_fen,
    rows_from_hold,
    write_rows,
)
from reservation.workflows.waitlist_common import freeing, leave_units, record_fulfilled


def seat_hold_id(services: Services, order: dict[str, Any]) -> str:
    key = order_key(services, order["account_id"], f"{order['id']}:{order['rank']}", "waitlist")
    return engine(services).keys.hold_id(order["run_id"], order["account_id"], key)


async def _offer(services: Services, order: dict[str, Any], hold_id: str | None) -> None:
    async with services.pool.acquire() as conn:
        await store.set_offer(conn, order["id"], hold_id, order["rank"] if hold_id else None)


async def record_fulfilment(
    services: Services,
    order: dict[str, Any],
    *,
    hold_id: str,
    rank: int,
    deadline_ms: int,
    source: str,
    detail: dict[str, Any],
) -> bool:
    """Steps 4 and 5; False if the order was no longer waiting (nothing recorded)."""
    now = from_ms(services.clock())
    payload = {
        "order": order["id"],
        "hold": hold_id,
        "rank": rank,
        "deadline": iso(from_ms(deadline_ms)),
        "source": source,
        **detail,
    }
    async with services.pool.acquire() as conn, conn.transaction():
        done = await store.mark_fulfilled(conn, order["id"], hold_id, rank, now)
        if done:
            await record_fulfilled(
                conn,
                order_id=order["id"],
                account_id=order["account_id"],
                payload=payload,
                now=now,
            )
    if done:
        await leave_units(services, order["id"])
    return done


async def fulfil_slot(
    services: Services, order: dict[str, Any], *, slot_id: str, piece_id: str
) -> Hold | None:
    """Give the order a place of ``slot_id``: a cooling piece, or an open place ('').
    None when a rule refuses (the order keeps waiting)."""
    meta = await services.slots.slot_meta(slot_id)
    hold_id = derive_hold_id(services, slot_id, order["account_id"], f"waitlist:{order['id']}")
    now = services.clock()
    await _offer(services, order, hold_id)
    try:
        hold = await freeing(services).transfer_slot(
            services.slots,
            piece_id=piece_id,
            slot_id=slot_id,
            hold_id=hold_id,
            account_id=order["account_id"],
            person=order["people"][0],
            deadline_ms=slot_deadline_ms(now, services.settings.slot_hold_seconds, meta.ends_ms),
            order_id=order["id"],
            now_ms=now,
        )
    except InventoryError:
        await _offer(services, order, None)
        return None
    await record_fulfilment(
        services,
        order,
        hold_id=hold_id,
        rank=order["rank"],
        deadline_ms=hold.deadline_ms,
        source="cooling" if piece_id else "open",
        detail={"slot": slot_id, "piece": piece_id},
    )
    return hold


async def fulfil_train(
    services: Services, order: dict[str, Any], *, pieces: list[str] | None
) -> str | None:
    """Give a train order its seats on its choice ``order['rank']``: from cooling pieces
    (one per passenger), or, with ``pieces=None``, seats on open sale. Returns the hold id,
    or None when a rule refuses (the order keeps waiting)."""
    run, status = await get_run(services, order["run_id"])
    a, b = int(order["seg_from"]), int(order["seg_to"])
    seats = engine(services)
    people = list(order["people"])
    now = services.clock()
    try:
        require_on_sale(services, run, a, status)
        await check_overlaps(services, people, trip(run, a, b))
    except Exception:
        return None  # the train left, or a passenger travels at that time now
    departs = run.departure_at(a)
    assert departs is not None
    deadline = hold_deadline_ms(config(services), now, departs)
    hold_id = seat_hold_id(services, order)
    await _offer(services, order, hold_id)
    try:
        if pieces is None:
            await ensure_run_loaded(services, run)
            key = order_key(
                services, order["account_id"], f"{order['id']}:{order['rank']}", "waitlist"
            )
            await seats.hold(
                order["account_id"],
                run.run_id,
                order["seat_class"],
                a,
                b,
                people,
                idempotency_key=key,
                deadline_ms=deadline,
                now_ms=now,
            )
        else:
            await freeing(services).transfer_seats(
                seats,
                run_id=run.run_id,
                seat_class=order["seat_class"],
                a=a,
                b=b,
                pieces=pieces,
                passengers=people,
                hold_id=hold_id,
                account_id=order["account_id"],
                deadline_ms=deadline,
                fingerprint=hold_fingerprint(run.run_id, order["seat_class"], a, b, people, "", ""),
                order_id=order["id"],
                now_ms=now,
            )
    except InventoryError:
        await _offer(services, order, None)
        return None
    await _tickets(services, hold_id, now)
    info = await seats.get_hold(hold_id)
    assert info is not None
    await record_fulfilment(
        services,
        order,
        hold_id=hold_id,
        rank=order["rank"],
        deadline_ms=info.deadline_ms,
        source="open" if pieces is None else "cooling",
        detail={"run": run.run_id, "class": order["seat_class"], "pieces": pieces or []},
    )
    return hold_id


async def _tickets(services: Services, hold_id: str, now: int) -> None:
    """The held tickets with their fare, as hold_tickets writes them."""
    epoch = await write_epoch(services)  # before the hold is read from Redis
    info = await engine(services).get_hold(hold_id)
    if info is None:
        return
    run = await run_of(services, info.run_id)
    price = price_fen(run, info.seat_class, *info.segments)
    rows = rows_from_hold(services, info, "held", at_ms=now, price=price)
    await write_rows(services, rows, epoch=epoch)


async def settle_offer(services: Services, order: dict[str, Any]) -> bool:
    """A waiting order with an offer (the filler stopped between steps 1 and 4): finish
    it if the hold exists, else clear the offer. True if it was fulfilled."""
    hold_id = order["offer_hold_id"]
    rank = int(order["offer_rank"])
    if order["kind"] == "slot":
        view = await services.slots.read_hold(hold_id)
        if view is None or view.account_id != order["account_id"]:
            await _offer(services, {"id": order["id"], "rank": None}, None)
            return False
        return await record_fulfilment(
            services,
            order,
            hold_id=hold_id,
            rank=rank,
            deadline_ms=view.deadline_ms,
            source="recovered",
            detail={"slot": view.slot_id},
        )
    info = await engine(services).get_hold(hold_id)
    if info is None or info.account_id != order["account_id"]:
        await _offer(services, {"id": order["id"], "rank": None}, None)
        return False
    await _tickets(services, hold_id, services.clock())
    return await record_fulfilment(
        services,
        order,
        hold_id=hold_id,
        rank=rank,
        deadline_ms=info.deadline_ms,
        source="recovered",
        detail={"run": info.run_id, "class": info.seat_class},
    )
