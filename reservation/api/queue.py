"""Routes of the waiting room: queued sales, joining, polling, the public draw record.

A citizen joins a queued sale (``POST /v1/sales/{id}/queue``), polls
(``GET /v1/sales/{id}/queue``) for position, estimated wait and chance, and once admitted
gets a queue token to send in the ``Queue-Token`` header of the hold request. Anyone can
read a sale (``GET /v1/sales/{id}``) and, after the draw, everything needed to recompute
its order (``GET /v1/sales/{id}/draw``; docs/fairness.md shows how).
"""

from __future__ import annotations

import re

from aiohttp import web

from reservation.api.queue_schemas import CreateSale
from reservation.api.routing import Call, Route, json_response
from reservation.auth import Role
from reservation.domain.clock import from_ms, iso
from reservation.errors import NotFound
from reservation.fairness.waiting_room import WAITLIST_PATH, StatusView
from reservation.fairness.waiting_room_rules import Sale, client_address
from reservation.services import Services

CITIZEN = (Role.CITIZEN,)
PUBLISHERS = (Role.OPERATOR, Role.STAFF)
QUEUE_TOKEN_HEADER = "Queue-Token"
_SALE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def request_address(request: web.Request, services: Services) -> str:
    """The client address the hold path limits: the peer, or behind a trusted proxy the
    first untrusted hop of X-Forwarded-For (``FAIRSEAT_TRUSTED_PROXIES``)."""
    room = services.waiting_room
    return client_address(
        request.remote, request.headers.get("X-Forwarded-For"), room.trusted_proxies
    )


def queue_token(request: web.Request) -> str | None:
    return request.headers.get(QUEUE_TOKEN_HEADER) or None


def _sale_id(call: Call) -> str:
    sale_id = call.path("sale_id")
    if not _SALE_ID.fullmatch(sale_id):
        raise NotFound("No such sale.")
    return sale_id


def sale_view(sale: Sale, now_ms: int) -> dict[str, object]:
    if now_ms < sale.window_ends_ms:
        phase = "joining" if now_ms < sale.release_ms else "opening_window"
    else:
        phase = "queued" if now_ms < sale.ends_ms else "over"
    return {
        "sale_id": sale.sale_id,
        "kind": sale.kind,
        "provider_id": sale.provider_id,
        "train_date": sale.train_date,
        "slot_ids": list(sale.slot_ids),
        "stock": sale.stock,
        "release_at": iso(from_ms(sale.release_ms)),
        "window_ends_at": iso(from_ms(sale.window_ends_ms)),
        "window_ends_ms": sale.window_ends_ms,
        "ends_at": iso(from_ms(sale.ends_ms)),
        "phase": phase,
        "admission": {"factor": sale.admit_factor, "admission_ttl_ms": sale.admission_ttl_ms},
        "commitment": sale.commitment,
        "seed": sale.seed_hex,
        "queue": f"/v1/sales/{sale.sale_id}/queue",
        "draw": f"/v1/sales/{sale.sale_id}/draw",
    }


async def create_queued_sale(call: Call) -> web.Response:
    body: CreateSale = call.body
    principal = call.principal
    assert principal is not None
    if body.kind == "slots" and body.provider_id is not None:
        principal.require_staff_of(body.provider_id)
    else:
        principal.require_operator()  # a train sale is the railway operator's
    actor = "operator" if principal.role is Role.OPERATOR else f"staff:{principal.provider_id}"
    sale = await call.services.waiting_room.create_sale(
        sale_id=body.sale_id,
        kind=body.kind,
        actor=actor,
        provider_id=body.provider_id,
        release_at=body.release_at,
        train_date=body.train_date,
        stock=body.stock,
        window_seconds=body.window_seconds,
        admit_factor=body.admit_factor,
        admission_seconds=body.admission_seconds,
        open_minutes=body.open_minutes,
    )
    return json_response(sale_view(sale, call.services.clock()), status=201)


async def get_queued_sale(call: Call) -> web.Response:
    sale = await call.services.waiting_room.get(_sale_id(call))
    return json_response(sale_view(sale, call.services.clock()))


async def queued_sale_draw(call: Call) -> web.Response:
    return json_response(await call.services.waiting_room.draw_record(_sale_id(call)))


async def join_queue(call: Call) -> web.Response:
    joined = await call.services.waiting_room.join(_sale_id(call), call.citizen_id)
    return json_response(
        {
            "sale_id": joined.sale_id,
            "join_id": joined.join_id,
            "arrival": joined.arrival,
            "joined_at": iso(from_ms(joined.joined_ms)),
            "in_window": joined.in_window,
            "replay": not joined.new,
        },
        status=201 if joined.new else 200,
    )


def status_view(view: StatusView) -> dict[str, object]:
    st, est = view.status, view.estimate
    body: dict[str, object] = {
        "sale_id": view.sale.sale_id,
        "state": st.state,
        "position": st.position or None,
        "ahead": est.ahead,
        "remaining": st.remaining,
        "admitted_upto": st.admitted_upto,
        "estimated_wait_s": est.wait_s,
        "chance": est.chance,
        # Poll no faster than this: it changes nothing about one's place.
        "poll_after_ms": 1000 if st.state in ("waiting", "draw_pending") else None,
    }
    if st.state == "draw_pending":
        body["draw_at"] = iso(from_ms(view.sale.window_ends_ms))
    if st.state == "admitted":
        body["queue_token"] = view.token
        body["token_expires_at"] = iso(from_ms(st.deadline_ms))
        body["header"] = QUEUE_TOKEN_HEADER
    if st.state in ("sold_out", "lapsed", "over"):
        body["waitlist"] = WAITLIST_PATH
    return body


async def queue_status(call: Call) -> web.Response:
    view = await call.services.waiting_room.status(_sale_id(call), call.citizen_id)
    return json_response(status_view(view))


ROUTES = [
    Route(
        "POST",
        "/v1/sales",
        create_queued_sale,
        "Queue a sale: its release, opening window, admission policy; logs the commitment",
        "fairness",
        roles=PUBLISHERS,
        body=CreateSale,
        responses={
            201: "Queued; the draw's commitment is public from now on",
            409: "The id, or some of its inventory, is already in a queued sale",
            422: "Nothing released then, or the release is not in the future",
        },
    ),
    Route(
        "GET",
        "/v1/sales/{sale_id}",
        get_queued_sale,
        "A queued sale: scope, times, commitment (and seed once drawn)",
        "fairness",
        responses={404: "No such sale"},
    ),
    Route(
        "GET",
        "/v1/sales/{sale_id}/draw",
        queued_sale_draw,
        "Everything needed to recompute the draw: audit export, joiners list, seed",
        "fairness",
        responses={404: "No such sale"},
    ),
    Route(
        "POST",
        "/v1/sales/{sale_id}/queue",
        join_queue,
        "Join a sale's waiting room (idempotent per account)",
        "fairness",
        roles=CITIZEN,
        responses={
            201: "Joined; in_window says whether the draw places you",
            200: "Already joined (same answer)",
            409: "Sold out (see the waitlist) or the sale is over",
        },
    ),
    Route(
        "GET",
        "/v1/sales/{sale_id}/queue",
        queue_status,
        "Your place: position, estimated wait, chance, and the queue token once admitted",
        "fairness",
        roles=CITIZEN,
        responses={404: "Not in this queue"},
    ),
]
