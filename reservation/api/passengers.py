"""Citizen routes: the account's passenger list (real name; at most 15 people).

The account holder is the first entry, created on first use. Another account's passenger
is answered "not found", never "forbidden", so ids cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web

from reservation.api.passenger_schemas import AddPassenger
from reservation.api.routing import Call, Route, json_response
from reservation.auth import Role
from reservation.domain.clock import CHINA, from_ms
from reservation.domain.passengers import (
    DuplicatePassenger,
    ListFull,
    NewPassenger,
    PassengerRuleError,
    check_new_passenger,
)
from reservation.errors import Conflict, NotFound, ValidationFailed
from reservation.store import passengers as passenger_store

CITIZEN = (Role.CITIZEN,)
PASSENGER_ID = re.compile(r"pa-[0-9a-f]{16}")


def _today(call: Call) -> dt.date:
    return from_ms(call.services.clock()).astimezone(CHINA).date()


def passenger_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "id_masked": row["id_masked"],
        "kind": row["kind"],
        "is_holder": row["is_holder"],
        "birth_date": row["birth_date"].isoformat(),
    }


def _refusal(exc: PassengerRuleError) -> Exception:
    if isinstance(exc, DuplicatePassenger | ListFull):
        return Conflict(str(exc), reason=exc.code, field=exc.field)
    # BadIdNumber, KindNotAllowed: the input itself is wrong.
    return ValidationFailed(errors=[{"field": exc.field, "message": str(exc)}])


async def list_passengers(call: Call) -> web.Response:
    account_id = call.citizen_id
    async with call.services.pool.acquire() as conn:
        await passenger_store.ensure_holder(conn, account_id, _today(call))
        rows = await passenger_store.list_passengers(conn, account_id)
    return json_response({"passengers": [passenger_view(r) for r in rows]})


async def add_passenger(call: Call) -> web.Response:
    body: AddPassenger = call.body
    today = _today(call)

    def check(existing: set[str]) -> NewPassenger:
        return check_new_passenger(
            name=body.name,
            id_number=body.id_number,
            kind=body.kind,
            existing_hmacs=existing,
            hmac_key=call.services.id_hmac_key,
            today=today,
        )

    try:
        async with call.services.pool.acquire() as conn:
            row = await passenger_store.add_passenger(conn, call.citizen_id, today, check)
    except PassengerRuleError as exc:
        raise _refusal(exc) from exc
    return json_response(passenger_view(row), status=201)


async def delete_passenger(call: Call) -> web.Response:
    passenger_id = call.path("passenger_id")
    account_id = call.citizen_id
    if not PASSENGER_ID.fullmatch(passenger_id):
        raise NotFound("No such passenger.")
    async with call.services.pool.acquire() as conn:
        row = await passenger_store.get_passenger(conn, account_id, passenger_id)
        if row is None:
            raise NotFound("No such passenger.")
        if row["is_holder"]:
            raise Conflict(
                "The account holder cannot be removed from their own list.",
                reason="holder",
            )
        await passenger_store.delete_passenger(conn, account_id, passenger_id)
    return web.Response(status=204)


ROUTES: list[Route] = [
    Route(
        "GET",
        "/v1/passengers",
        list_passengers,
        "The citizen's passengers (the account holder first)",
        "passengers",
        roles=CITIZEN,
    ),
    Route(
        "POST",
        "/v1/passengers",
        add_passenger,
        "Add a passenger (real name, validated ID number)",
        "passengers",
        roles=CITIZEN,
        body=AddPassenger,
        responses={
            201: "Added; the ID number comes back masked",
            409: "Already on the list, or the list holds 15 people",
            422: "Invalid ID number or fields",
        },
    ),
    Route(
        "DELETE",
        "/v1/passengers/{passenger_id}",
        delete_passenger,
        "Remove a passenger from the list",
        "passengers",
        roles=CITIZEN,
        responses={
            204: "Removed",
            404: "No such passenger (or not yours)",
            409: "The account holder's own entry",
        },
    ),
]
