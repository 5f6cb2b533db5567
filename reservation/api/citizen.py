"""Citizen routes: register, sign in, browse slots, hold, confirm, cancel, read bookings."""

from __future__ import annotations

from aiohttp import web

from reservation.api import listings, schemas
from reservation.api.headers import idempotency_key
from reservation.api.queue import queue_token, request_address  # fairness (issue 5)
from reservation.api.routing import Call, Route, json_response
from reservation.api.serialize import booking_from_row, slot_from_row
from reservation.auth import Role
from reservation.domain.clock import iso_from_ms
from reservation.domain.identity import mask_phone
from reservation.errors import NotFound, NotFoundInInventory
from reservation.store import accounts as account_store
from reservation.store import bookings as booking_store
from reservation.store import catalog
from reservation.workflows import register_citizen
from reservation.workflows.cancel_booking import cancel_booking
from reservation.workflows.confirm_booking import confirm_booking
from reservation.workflows.hold_slot import PersonCache, hold_slot

CITIZEN = (Role.CITIZEN,)
PEOPLE = web.AppKey("people", PersonCache)


async def register(call: Call) -> web.Response:
    body: schemas.RegisterCitizen = call.body
    session = await register_citizen.register(
        call.services, name=body.name, phone=body.phone, id_number=body.id_number
    )
    return json_response(
        {"account_id": session.account_id, "token": session.token, "id_masked": session.id_masked},
        status=201,
    )


async def sign_in(call: Call) -> web.Response:
    body: schemas.SignIn = call.body
    session = await register_citizen.sign_in(
        call.services, phone=body.phone, id_number=body.id_number
    )
    return json_response(
        {"account_id": session.account_id, "token": session.token, "id_masked": session.id_masked}
    )


async def me(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        row = await account_store.get_account(conn, call.citizen_id)
    if row is None:
        raise NotFound("No such account.")
    return json_response(
        {
            "account_id": row["id"],
            "name": row["name"],
            "phone": mask_phone(row["phone"]),
            "id_masked": row["id_masked"],
            "birth_date": row["birth_date"].isoformat(),
        }
    )


async def list_slots(call: Call) -> web.Response:
    q: schemas.SlotQuery = call.query
    rows = await listings.catalogue(
        call,
        ("slots", q.provider_id, q.resource_id, q.day),
        lambda conn: catalog.list_slots(
            conn, provider_id=q.provider_id, resource_id=q.resource_id, day=q.day
        ),
    )
    available = await call.services.slots.available([r["id"] for r in rows])
    return json_response({"slots": [slot_from_row(r, available.get(r["id"])) for r in rows]})


async def list_providers(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        rows = await catalog.list_providers(conn)
    return json_response(
        {"providers": [{"id": r["id"], "name": r["name"], "kind": r["kind"]} for r in rows]}
    )


async def hold(call: Call) -> web.Response:
    body: schemas.HoldSlot = call.body
    key = idempotency_key(call)
    result = await hold_slot(
        call.services,
        call.request.app[PEOPLE],
        account_id=call.citizen_id,
        slot_id=body.slot_id,
        idempotency_key=key,
        person=call.principal.person if call.principal is not None else None,
        client_address=_address(call),  # fairness (issue 5)
        queue_token=queue_token(call.request),
    )
    payload = {
        "id": result.hold_id,
        "slot_id": result.slot_id,
        "state": result.state,
        "deadline": booking_deadline(result.deadline_ms),
        "replay": result.replay,
    }
    return json_response(payload, status=200 if result.replay else 201)


# --- speed (issue 7): (peer, X-Forwarded-For) -> (trusted proxies, client address).
# Parsing addresses on every hold was ~3 % of its CPU; a client sends the same pair again.
_ADDRESSES: dict[tuple[str | None, str | None], tuple[object, str]] = {}


def _address(call: Call) -> str:
    request = call.request
    trusted = call.services.waiting_room.trusted_proxies
    key = (request.remote, request.headers.get("X-Forwarded-For"))
    known = _ADDRESSES.get(key)
    if known is not None and known[0] is trusted:
        return known[1]
    if len(_ADDRESSES) >= 100_000:
        _ADDRESSES.clear()
    address = request_address(request, call.services)
    _ADDRESSES[key] = (trusted, address)
    return address


def booking_deadline(ms: int) -> str | None:
    return iso_from_ms(ms)


async def confirm(call: Call) -> web.Response:
    done = await confirm_booking(
        call.services, account_id=call.citizen_id, hold_id=call.path("booking_id")
    )
    return json_response(
        {
            "id": done.hold_id,
            "slot_id": done.slot_id,
            "state": "confirmed",
            "confirmed_at": booking_deadline(done.confirmed_ms),
            "replay": done.replay,
        }
    )


async def cancel(call: Call) -> web.Response:
    done = await cancel_booking(
        call.services, account_id=call.citizen_id, hold_id=call.path("booking_id")
    )
    return json_response(
        {"id": done.hold_id, "slot_id": done.slot_id, "state": done.state, "replay": done.replay}
    )


async def get_booking(call: Call) -> web.Response:
    """The booking as recorded, with its state from the live inventory (which may be a
    few milliseconds ahead of the persister)."""
    account_id = call.citizen_id
    booking_id = call.path("booking_id")
    try:
        live = await call.services.slots.read_hold(booking_id)
    except NotFoundInInventory:  # a malformed id is simply unknown
        raise NotFound("No such booking.") from None
    async with call.services.pool.acquire() as conn:
        row = await booking_store.get_booking(conn, booking_id)
        if row is None and live is not None:
            row = await booking_store.booking_from_live_parts(conn, live)
    if row is None or row["account_id"] != account_id:
        raise NotFound("No such booking.")
    if live is not None:
        row = {**row, "state": live.state}
    return json_response(booking_from_row(row))


async def my_bookings(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        rows = await booking_store.list_for_account(conn, call.citizen_id)
    return json_response({"bookings": [booking_from_row(r) for r in rows]})


ROUTES = [
    Route(
        "POST",
        "/v1/citizens",
        register,
        "Register a citizen account (real name)",
        "citizen",
        body=schemas.RegisterCitizen,
        responses={
            201: "Registered; returns a bearer token",
            409: "ID number or phone already registered",
        },
    ),
    Route(
        "POST",
        "/v1/sessions",
        sign_in,
        "Sign in with phone and ID number",
        "citizen",
        body=schemas.SignIn,
        responses={200: "A fresh bearer token"},
    ),
    Route("GET", "/v1/me", me, "The signed-in citizen's account", "citizen", roles=CITIZEN),
    Route("GET", "/v1/providers", list_providers, "Hospitals and vaccination sites", "citizen"),
    Route(
        "GET",
        "/v1/slots",
        list_slots,
        "Published slots with remaining places",
        "citizen",
        query=schemas.SlotQuery,
    ),
    Route(
        "POST",
        "/v1/bookings",
        hold,
        "Hold a place in a slot (send Idempotency-Key)",
        "citizen",
        roles=CITIZEN,
        body=schemas.HoldSlot,
        responses={
            201: "Held until the deadline",
            200: "Replay of an earlier request",
            403: "A queued sale: send an admitting Queue-Token header (fairness)",
            409: "Sold out, not released, or a rule refused it",
            429: "Too many unpaid holds, or rate limited (Retry-After)",
        },
    ),
    Route("GET", "/v1/bookings", my_bookings, "The citizen's bookings", "citizen", roles=CITIZEN),
    Route(
        "GET",
        "/v1/bookings/{booking_id}",
        get_booking,
        "One of the citizen's bookings",
        "citizen",
        roles=CITIZEN,
        responses={404: "No such booking (or not yours)"},
    ),
    Route(
        "POST",
        "/v1/bookings/{booking_id}/confirm",
        confirm,
        "Pay for a hold: answered only after the booking is committed",
        "citizen",
        roles=CITIZEN,
        responses={
            409: "The hold expired or was cancelled",
            503: "Storage unavailable; retry the same request",
        },
    ),
    Route(
        "POST",
        "/v1/bookings/{booking_id}/cancel",
        cancel,
        "Cancel a hold or booking",
        "citizen",
        roles=CITIZEN,
    ),
]
