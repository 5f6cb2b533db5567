"""Routes: train orders and e-tickets (citizens only).

An order is one seat hold for 1 to 5 passengers of the account's list; its tickets are
``<order id>.<n>``. Another account's order or ticket is answered 404, never 403, so ids
cannot be probed. Writes take an ``Idempotency-Key`` header where a retry could otherwise
do the work twice (hold, change); pay, cancel and refund are idempotent by their path.
"""

from __future__ import annotations

from aiohttp import web

from reservation.api.headers import idempotency_key
from reservation.api.queue import queue_token, request_address  # fairness (issue 5)
from reservation.api.routing import Call, Route, json_response
from reservation.api.ticket_schemas import ChangeTicket, HoldOrder
from reservation.auth import Role
from reservation.errors import NotFound
from reservation.workflows.cancel_order import cancel_order
from reservation.workflows.change_ticket import change_order, change_ticket
from reservation.workflows.hold_tickets import hold_tickets
from reservation.workflows.pay_order import pay_order
from reservation.workflows.refund_ticket import refund_order, refund_ticket
from reservation.workflows.train_orders import (
    order_view,
    order_views,
    split_ticket_id,
    ticket_rows,
    ticket_view,
)

CITIZEN = (Role.CITIZEN,)


async def hold_train_order(call: Call) -> web.Response:
    body: HoldOrder = call.body
    held = await hold_tickets(
        call.services,
        account_id=call.citizen_id,
        run_id=body.run_id,
        origin=body.from_,
        destination=body.to,
        seat_class=body.seat_class,
        passenger_ids=body.passenger_ids,
        wish=body.wish,
        idempotency_key=idempotency_key(call),
        client_address=request_address(call.request, call.services),  # fairness (issue 5)
        queue_token=queue_token(call.request),
    )
    view = await order_view(call.services, call.citizen_id, held.hold.hold_id)
    view["wish_met"] = held.hold.wish_met
    view["replay"] = held.hold.replayed
    return json_response(view, status=200 if held.hold.replayed else 201)


async def pay_train_order(call: Call) -> web.Response:
    view = await pay_order(
        call.services,
        account_id=call.citizen_id,
        order_id=call.path("order_id"),
        attempt_key=idempotency_key(call) or "",
    )
    return json_response(view)


async def cancel_train_order(call: Call) -> web.Response:
    view = await cancel_order(
        call.services, account_id=call.citizen_id, order_id=call.path("order_id")
    )
    return json_response(view)


async def list_train_orders(call: Call) -> web.Response:
    rows = await ticket_rows(call.services, account_id=call.citizen_id)
    return json_response({"orders": await order_views(call.services, rows)})


async def get_train_order(call: Call) -> web.Response:
    return json_response(await order_view(call.services, call.citizen_id, call.path("order_id")))


async def get_e_ticket(call: Call) -> web.Response:
    ticket = call.path("ticket_id")
    hold_id, n = split_ticket_id(ticket)
    rows = await ticket_rows(call.services, account_id=call.citizen_id, hold_ids=[hold_id])
    row = next((r for r in rows if r["passenger_no"] == n), None)
    if row is None:
        raise NotFound("No such ticket.")
    return json_response(await ticket_view(call.services, row))


async def refund_e_ticket(call: Call) -> web.Response:
    ticket = call.path("ticket_id")
    done = await refund_ticket(call.services, account_id=call.citizen_id, ticket_id=ticket)
    mine = next(t for t in done.tickets if t["id"] == ticket)
    fee = mine["refund_fee_fen"] or 0
    return json_response(
        {"ticket": mine, "fee_fen": fee, "refunded_fen": (mine["price_fen"] or 0) - fee}
    )


async def refund_train_order(call: Call) -> web.Response:
    done = await refund_order(
        call.services, account_id=call.citizen_id, order_id=call.path("order_id")
    )
    return json_response(
        {"tickets": done.tickets, "fee_fen": done.fee_fen, "refunded_fen": done.refunded_fen}
    )


async def change_train_order(call: Call) -> web.Response:
    body: ChangeTicket = call.body
    view = await change_order(
        call.services,
        account_id=call.citizen_id,
        order_id=call.path("order_id"),
        run_id=body.run_id,
        seat_class=body.seat_class,
        wish=body.wish,
        idempotency_key=idempotency_key(call),
    )
    return json_response(view)


async def change_e_ticket(call: Call) -> web.Response:
    body: ChangeTicket = call.body
    view = await change_ticket(
        call.services,
        account_id=call.citizen_id,
        ticket_id=call.path("ticket_id"),
        run_id=body.run_id,
        seat_class=body.seat_class,
        wish=body.wish,
        idempotency_key=idempotency_key(call),
    )
    return json_response(view)


ROUTES: list[Route] = [
    Route(
        "POST",
        "/v1/orders",
        hold_train_order,
        "Hold seats for 1 to 5 passengers of your list (send Idempotency-Key)",
        "tickets",
        roles=CITIZEN,
        body=HoldOrder,
        responses={
            201: "Held until the deadline: tickets with coach, seat, position; the price",
            200: "Replay of an earlier request",
            409: "Sold out, not released, departed, overlapping trip, cancellation limit",
            422: "party_size, duplicate_passenger, unknown_passenger, bad fields",
            429: "Too many unpaid holds",
        },
    ),
    Route("GET", "/v1/orders", list_train_orders, "Your train orders", "tickets", roles=CITIZEN),
    Route(
        "GET",
        "/v1/orders/{order_id}",
        get_train_order,
        "One of your orders",
        "tickets",
        roles=CITIZEN,
        responses={404: "No such order (or not yours)"},
    ),
    Route(
        "POST",
        "/v1/orders/{order_id}/pay",
        pay_train_order,
        "Pay: answered with the e-tickets only after they are committed",
        "tickets",
        roles=CITIZEN,
        responses={
            402: "Payment declined; the order stays held",
            409: "The hold expired or was cancelled",
            503: "Storage or payment unavailable; retry the same request",
        },
    ),
    Route(
        "POST",
        "/v1/orders/{order_id}/cancel",
        cancel_train_order,
        "Cancel an unpaid order (counts toward the daily limit)",
        "tickets",
        roles=CITIZEN,
        responses={409: "Already paid: refund instead"},
    ),
    Route(
        "POST",
        "/v1/orders/{order_id}/refund",
        refund_train_order,
        "Refund every ticket of a paid order before departure, less the fees",
        "tickets",
        roles=CITIZEN,
        responses={409: "refund_closed, not_paid, already_changed"},
    ),
    Route(
        "POST",
        "/v1/orders/{order_id}/change",
        change_train_order,
        "改签 a whole paid order once to another run of the same route (Idempotency-Key)",
        "tickets",
        roles=CITIZEN,
        body=ChangeTicket,
        responses={
            200: "The new order with its confirmed tickets",
            402: "The fare difference was declined",
            409: "already_changed, sold out, departed",
            422: "not_same_route",
        },
    ),
    Route(
        "GET",
        "/v1/tickets/{ticket_id}",
        get_e_ticket,
        "An e-ticket: train, stations, times, coach, seat, verification code",
        "tickets",
        roles=CITIZEN,
        responses={404: "No such ticket (or not yours)"},
    ),
    Route(
        "POST",
        "/v1/tickets/{ticket_id}/refund",
        refund_e_ticket,
        "Refund a paid ticket before departure, less the fee",
        "tickets",
        roles=CITIZEN,
        responses={409: "refund_closed, not_paid, already_changed, whole_order_only"},
    ),
    Route(
        "POST",
        "/v1/tickets/{ticket_id}/change",
        change_e_ticket,
        "改签: move a paid ticket once to another run of the same route (Idempotency-Key)",
        "tickets",
        roles=CITIZEN,
        body=ChangeTicket,
        responses={
            200: "The new order with its confirmed ticket",
            402: "The fare difference was declined",
            409: "already_changed, sold out, departed, whole_order_only",
            422: "not_same_route",
        },
    ),
]
