"""Routes: waitlist orders (citizens) and handoff flags (operators).

Another account's order is answered 404, never 403. Filing takes an ``Idempotency-Key``
header: a retry answers the first order."""

from __future__ import annotations

from aiohttp import web

from reservation.api.headers import idempotency_key
from reservation.api.routing import Call, Route, json_response
from reservation.api.waitlist_schemas import FlagsQuery, SlotWaitlistIn, TrainWaitlistIn
from reservation.auth import Role
from reservation.domain.clock import iso
from reservation.store import waitlist as store
from reservation.workflows.waitlist_cancel import cancel_waitlist_order
from reservation.workflows.waitlist_file import file_slot_order, file_train_order
from reservation.workflows.waitlist_view import my_order, my_orders

CITIZEN = (Role.CITIZEN,)
OPERATOR = (Role.OPERATOR,)


async def waitlist_file_train(call: Call) -> web.Response:
    body: TrainWaitlistIn = call.body
    view = await file_train_order(
        call.services,
        account_id=call.citizen_id,
        origin=body.from_,
        destination=body.to,
        day=body.date,
        choices=[(c.run_id, c.seat_class) for c in body.choices],
        passenger_ids=body.passenger_ids,
        deadline=body.deadline,
        idempotency_key=idempotency_key(call),
    )
    return json_response(view, status=201)


async def waitlist_file_slots(call: Call) -> web.Response:
    body: SlotWaitlistIn = call.body
    person = call.principal.person if call.principal is not None else None
    view = await file_slot_order(
        call.services,
        account_id=call.citizen_id,
        resource_ids=body.resource_ids,
        first_day=body.first_day,
        last_day=body.last_day,
        deadline=body.deadline,
        idempotency_key=idempotency_key(call),
        person=person,
    )
    return json_response(view, status=201)


async def waitlist_list_mine(call: Call) -> web.Response:
    return json_response({"orders": await my_orders(call.services, call.citizen_id)})


async def waitlist_get_one(call: Call) -> web.Response:
    return json_response(await my_order(call.services, call.citizen_id, call.path("order_id")))


async def waitlist_cancel_one(call: Call) -> web.Response:
    view = await cancel_waitlist_order(call.services, call.citizen_id, call.path("order_id"))
    return json_response(view)


async def operator_handoff_flags(call: Call) -> web.Response:
    query: FlagsQuery = call.query
    async with call.services.pool.acquire() as conn:
        rows = await store.list_flags(conn, query.limit)
    flags = [
        {
            "id": r["id"],
            "kind": r["kind"],
            "object": r["object"],
            "cancelled": {
                "id": r["cancelled_id"],
                "account_id": r["cancelled_account"],
                "at": iso(r["cancelled_at"]),
            },
            "booked": {
                "id": r["booked_id"],
                "account_id": r["booked_account"],
                "at": iso(r["booked_at"]),
            },
            "gap_ms": r["gap_ms"],
            "flagged_at": iso(r["flagged_at"]),
        }
        for r in rows
    ]
    return json_response({"flags": flags})


ROUTES: list[Route] = [
    Route(
        "POST",
        "/v1/waitlist/trains",
        waitlist_file_train,
        "Wait for seats on a sold-out trip: ranked (run, class) choices, 1-5 passengers",
        "waitlist",
        roles=CITIZEN,
        body=TrainWaitlistIn,
        responses={
            201: "Waiting (a retry with the same Idempotency-Key answers the same order)",
            409: "A choice is not sold out, or a passenger already travels then",
        },
    ),
    Route(
        "POST",
        "/v1/waitlist/slots",
        waitlist_file_slots,
        "Wait for a place with any of these resources over a day range",
        "waitlist",
        roles=CITIZEN,
        body=SlotWaitlistIn,
        responses={
            201: "Waiting (a retry with the same Idempotency-Key answers the same order)",
            409: "A slot is not sold out or not released yet",
        },
    ),
    Route(
        "GET", "/v1/waitlist", waitlist_list_mine, "Your waitlist orders", "waitlist", roles=CITIZEN
    ),
    Route(
        "GET",
        "/v1/waitlist/{order_id}",
        waitlist_get_one,
        "One waitlist order with its position in each choice's line",
        "waitlist",
        roles=CITIZEN,
        responses={404: "No such order of yours"},
    ),
    Route(
        "POST",
        "/v1/waitlist/{order_id}/cancel",
        waitlist_cancel_one,
        "Stop waiting (a fulfilled order is a hold: cancel that instead)",
        "waitlist",
        roles=CITIZEN,
        responses={409: "The order is no longer waiting", 404: "No such order of yours"},
    ),
    Route(
        "GET",
        "/v1/operator/handoff-flags",
        operator_handoff_flags,
        "Cancel -> rebook pairs between different ID numbers, newest first",
        "operator",
        roles=OPERATOR,
        query=FlagsQuery,
    ),
]
