"""Operator routes: the live inventory's epoch, rebuild, reconciliation, dead letters."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from reservation.api.routing import Call, Route, json_response
from reservation.auth import Role
from reservation.workflows.rebuild_inventory import (
    inventory_status,
    rebuild_inventory,
    reconcile_inventory,
)

OPERATOR = (Role.OPERATOR,)


class DeadLetterQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


async def status(call: Call) -> web.Response:
    return json_response(await inventory_status(call.services))


async def rebuild(call: Call) -> web.Response:
    report = await rebuild_inventory(call.services)
    return json_response(report.to_dict())


async def reconcile(call: Call) -> web.Response:
    differences = await reconcile_inventory(call.services)
    return json_response(
        {"clean": not differences, "differences": [d.to_dict() for d in differences]}
    )


async def dead_letters(call: Call) -> web.Response:
    """The newest entries of every shard's dead-letter stream, newest first."""
    query: DeadLetterQuery = call.query
    keys = call.services.keys
    async with call.services.redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.shard_count):
            pipe.xrevrange(keys.dead_letters(shard), count=query.limit)
        replies = await pipe.execute()
    entries = [
        {"shard": shard, "id": entry_id, "fields": fields}
        for shard, reply in enumerate(replies)
        for entry_id, fields in reply
    ]
    entries.sort(key=lambda e: tuple(int(p) for p in str(e["id"]).split("-")), reverse=True)
    return json_response({"dead_letters": entries[: query.limit]})


ROUTES: list[Route] = [
    Route(
        "GET",
        "/v1/operator/inventory/status",
        status,
        "The live inventory's epoch and whether sales are open",
        "operator",
        roles=OPERATOR,
    ),
    Route(
        "POST",
        "/v1/operator/inventory/rebuild",
        rebuild,
        "Close sales, rebuild the live inventory from Postgres, open sales",
        "operator",
        roles=OPERATOR,
        responses={200: "Rebuilt; sales are open", 503: "A backend is unavailable"},
    ),
    Route(
        "GET",
        "/v1/operator/inventory/reconcile",
        reconcile,
        "Every difference between Redis and Postgres (drains the outboxes first)",
        "operator",
        roles=OPERATOR,
    ),
    Route(
        "GET",
        "/v1/operator/dead-letters",
        dead_letters,
        "Outbox entries the persister gave up on, newest first",
        "operator",
        roles=OPERATOR,
        query=DeadLetterQuery,
    ),
]
