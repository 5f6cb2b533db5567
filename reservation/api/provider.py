"""Provider staff routes: publish slots in bulk, see a day's slots and bookings."""

from __future__ import annotations

from aiohttp import web

from reservation.api import schemas
from reservation.api.routing import Call, Route, json_response
from reservation.api.serialize import iso, slot_from_row
from reservation.auth import Role
from reservation.domain.slots import SlotDraft
from reservation.errors import NotFound
from reservation.store import bookings as booking_store
from reservation.store import catalog
from reservation.workflows.publish_slots import ResourceInput, publish

STAFF = (Role.STAFF, Role.OPERATOR)


async def provider_of(call: Call) -> str:
    """The path's provider, which the caller must be staff of (or an operator); 404 if
    there is no such provider."""
    provider_id = call.path("provider_id")
    assert call.principal is not None
    call.principal.require_staff_of(provider_id)
    async with call.services.pool.acquire() as conn:
        if await catalog.get_provider(conn, provider_id) is None:
            raise NotFound("No such provider.")
    return provider_id


async def publish_slots(call: Call) -> web.Response:
    provider_id = await provider_of(call)
    body: schemas.PublishSlots = call.body
    resources = [ResourceInput(r.code, r.name, r.kind, r.details) for r in body.resources]
    drafts = [
        SlotDraft(
            row=i,
            resource_code=s.resource_code,
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            capacity=s.capacity,
            release_at=s.release_at,
        )
        for i, s in enumerate(body.slots)
    ]
    published = await publish(call.services, provider_id, resources, drafts)
    return json_response(
        {
            "slots": [
                {
                    "id": p.slot_id,
                    "resource_code": p.resource_code,
                    "starts_at": iso(p.starts_at),
                    "ends_at": iso(p.ends_at),
                    "capacity": p.capacity,
                    "release_at": iso(p.release_at),
                    "created": p.created,
                }
                for p in published
            ]
        },
        status=201,
    )


async def provider_slots(call: Call) -> web.Response:
    provider_id = await provider_of(call)
    q: schemas.DayQuery = call.query
    async with call.services.pool.acquire() as conn:
        rows = await catalog.list_slots(conn, provider_id=provider_id, day=q.day)
        bookings = await booking_store.list_for_slot_day(conn, provider_id, q.day)
    available = await call.services.slots.available([r["id"] for r in rows])
    return json_response(
        {
            "slots": [slot_from_row(r, available.get(r["id"])) for r in rows],
            "bookings": [
                {
                    "id": b["id"],
                    "slot_id": b["slot_id"],
                    "state": b["state"],
                    "name": b["name"],
                    "id_masked": b["id_masked"],
                    "held_at": iso(b["held_at"]),
                    "confirmed_at": iso(b["confirmed_at"]),
                }
                for b in bookings
            ],
        }
    )


ROUTES = [
    Route(
        "POST",
        "/v1/providers/{provider_id}/slots",
        publish_slots,
        "Publish resources and slots in bulk (all or nothing)",
        "provider",
        roles=STAFF,
        body=schemas.PublishSlots,
        responses={
            201: "Published (identical slots are recognised, not duplicated)",
            422: "Offending rows listed; nothing published",
            403: "Key of another provider",
        },
    ),
    Route(
        "GET",
        "/v1/providers/{provider_id}/slots",
        provider_slots,
        "A day's slots and bookings, for staff",
        "provider",
        roles=STAFF,
        query=schemas.DayQuery,
    ),
]
