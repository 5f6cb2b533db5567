"""What the waitlist use cases share: refusals, ids, the order's wire format, leaving units.

An order is recorded in Postgres first and only then *enrolled* on its units in Redis
(``waitlist_unit.lua``). The filler reads a unit's generation before it reads the waiting
orders from Postgres, so an order enrolled after that read bumps the generation and the
filler's attempt to put freed places back on open sale is refused (docs/waitlist.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from inventory.waitlist_engine import Freeing
from reservation.domain.clock import iso
from reservation.errors import FairseatError
from reservation.fairness import audit
from reservation.fairness.waitlist import MAX_WAITING_PER_ACCOUNT, WaitlistRuleError
from reservation.notifications.record import NotificationKind, record_notification
from reservation.services import Services
from reservation.store import waitlist as store


class NotSoldOut(FairseatError):
    code = "not_sold_out"
    http_status = 409
    default_message = "This choice is not sold out: book it instead of waiting."


class NothingToWaitFor(FairseatError):
    code = "nothing_to_wait_for"
    http_status = 409
    default_message = "No published inventory matches this waitlist order."


class WaitlistCap(FairseatError):
    code = "waitlist_cap"
    http_status = 409
    default_message = "Too many waiting orders on this account; withdraw one first."


class NotWaiting(FairseatError):
    code = "not_waiting"
    http_status = 409
    default_message = "This waitlist order is no longer waiting."


class BadWaitlistOrder(FairseatError):
    code = "bad_waitlist_order"
    http_status = 422
    default_message = "This waitlist order is not valid."


def rule_refusal(exc: WaitlistRuleError) -> FairseatError:
    return BadWaitlistOrder(str(exc), reason=exc.code, **exc.detail)


async def check_account_cap(services: Services, account_id: str) -> None:
    async with services.pool.acquire() as conn:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM waitlist_orders WHERE account_id = $1 AND state = 'waiting'",
            account_id,
        )
    if waiting >= MAX_WAITING_PER_ACCOUNT:
        raise WaitlistCap(limit=MAX_WAITING_PER_ACCOUNT)


def freeing(services: Services) -> Freeing:
    found = services.slots.freeing
    if found is None:  # pragma: no cover - open_services always installs one
        raise RuntimeError("no Freeing installed on the slot engine")
    return found


def order_id_for(services: Services, account_id: str, idempotency_key: str) -> str:
    """Derived from (account, key) with the secret: a retried filing names the same order,
    and nobody can guess another's order id."""
    digest = hmac.new(
        services.secret_key, f"waitlist|{account_id}|{idempotency_key}".encode(), hashlib.sha256
    ).hexdigest()
    return f"w{digest[:24]}"


async def leave_units(services: Services, order_id: str) -> None:
    """The order stops waiting everywhere (idempotent: safe to repeat after a crash)."""
    async with services.pool.acquire() as conn:
        choices = await store.choices_of(conn, order_id)
    wl = freeing(services)
    for unit in {c["unit"] for c in choices}:
        await wl.enroll(unit, order_id, leave=True)


async def order_view(services: Services, order: dict[str, Any]) -> dict[str, Any]:
    """The order as the API shows it; positions while it waits."""
    async with services.pool.acquire() as conn:
        choices = await store.choices_of(conn, order["id"])
        places = await store.positions(conn, order["id"]) if order["state"] == "waiting" else {}
    request = order["request"]
    if isinstance(request, str):
        request = json.loads(request)
    shown = []
    for c in choices:
        item: dict[str, Any] = {"rank": c["rank"], "position": places.get(c["rank"])}
        if order["kind"] == "train":
            item |= {"run_id": c["run_id"], "seat_class": c["seat_class"]}
        else:
            item |= {"resource_id": c["resource_id"], "day": c["day"].isoformat()}
        shown.append(item)
    return {
        "id": order["id"],
        "kind": order["kind"],
        "state": order["state"],
        "filed_at": iso(order["filed_at"]),
        "deadline": iso(order["deadline"]),
        "request": request,
        "passenger_ids": list(order["passenger_ids"]),
        "choices": shown,
        "hold_id": order["hold_id"],
        "fulfilled_rank": order["fulfilled_rank"],
        "ended_at": iso(order["ended_at"]),
        "end_reason": order["end_reason"],
    }


FILLER = "waitlist_filler"  # the actor of every allocation the filler audits


async def record_fulfilled(
    conn: Any, *, order_id: str, account_id: str, payload: dict[str, Any], now: dt.datetime
) -> None:
    """An order got its place (in ``conn``'s transaction): WAITLIST_FULFILLED to its
    citizen, once per order, and the allocation in the audit log, with ``payload``."""
    await record_notification(
        conn,
        account_id=account_id,
        kind=NotificationKind.WAITLIST_FULFILLED,
        subject=order_id,
        payload=payload,
        dedupe_key=f"waitlist:{order_id}:fulfilled",
        at=now,
    )
    await audit.append(conn, audit.Kind.ALLOCATION, f"waitlist:{order_id}", FILLER, payload, at=now)
