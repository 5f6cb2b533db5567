"""Citizen notifications: the inbox (paged, newest first, unread count, mark read) and the
live page (server-sent events, resumable with Last-Event-ID)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import orjson
from aiohttp import web
from pydantic import Field

from reservation.api.routing import Call, Route, json_response
from reservation.api.schemas import Strict
from reservation.auth import Role
from reservation.domain.clock import from_ms, iso
from reservation.errors import ValidationFailed
from reservation.notifications import store
from reservation.notifications.live import LiveHub
from reservation.notifications.senders import message

log = logging.getLogger("fairseat.live")

CITIZEN = (Role.CITIZEN,)
LIVE = web.AppKey("live_notifications", LiveHub)
CATCH_UP_PAGE = 100


# A notification id is a Postgres bigint: a larger number overflowed in the driver (500).
ID_MAX = 2**63 - 1
NotificationId = Annotated[int, Field(ge=1, le=ID_MAX)]


class InboxQuery(Strict):
    before: NotificationId | None = Field(default=None, description="Page on: ids below this one")
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    unread: bool = Field(default=False, description="Only unread notifications")


class MarkRead(Strict):
    ids: list[NotificationId] = Field(default_factory=list, max_length=500)
    up_to: NotificationId | None = Field(
        default=None, description="Also every notification with an id up to this one"
    )


class EventsQuery(Strict):
    after: int | None = Field(
        default=None,
        ge=0,
        le=ID_MAX,
        description="Resume after this notification id (as the Last-Event-ID header does)",
    )


def install(app: web.Application, *, max_streams: int) -> None:
    """The per-process live hub; closed at shutdown, before aiohttp waits for handlers,
    so open streams end instead of holding the shutdown up."""
    hub = LiveHub(max_streams=max_streams)
    app[LIVE] = hub

    async def close_hub(_app: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(close_hub)


def _view(n: store.Stored) -> dict[str, Any]:
    return {**message(n), "read_at": iso(n.read_at)}


async def inbox(call: Call) -> web.Response:
    q: InboxQuery = call.query
    async with call.services.pool.acquire() as conn:
        items, unread = await store.inbox_page(
            conn, call.citizen_id, before=q.before, limit=q.limit, unread_only=q.unread
        )
    return json_response(
        {
            "notifications": [_view(n) for n in items],
            "unread": unread,
            # Ids only go up, so "below the last one shown" is a stable next page.
            "next_before": items[-1].id if len(items) == q.limit else None,
        }
    )


async def mark_read(call: Call) -> web.Response:
    body: MarkRead = call.body
    if not body.ids and body.up_to is None:
        raise ValidationFailed(errors=[{"field": "ids", "message": "give ids or up_to"}])
    at = from_ms(call.services.clock())
    async with call.services.pool.acquire() as conn:
        marked = await store.mark_read(conn, call.citizen_id, ids=body.ids, up_to=body.up_to, at=at)
        _, unread = await store.inbox_page(conn, call.citizen_id, before=None, limit=1)
    return json_response({"marked": marked, "unread": unread})


def _resume_from(call: Call) -> int | None:
    raw = call.request.headers.get("Last-Event-ID")
    if raw is None or raw.strip() == "":
        q: EventsQuery = call.query
        return q.after
    raw = raw.strip()
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses; the
    # length keeps int() within its digit limit.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= ID_MAX):
        raise ValidationFailed(
            errors=[{"field": "Last-Event-ID", "message": "a notification id (an integer)"}]
        )
    return int(raw)


def _frame(n: store.Stored) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (n.id, orjson.dumps(_view(n)))


async def events(call: Call) -> web.StreamResponse:
    services = call.services
    hub = call.request.app[LIVE]
    account = call.citizen_id
    last = _resume_from(call)
    dsn = services.settings.database_url
    assert dsn is not None
    heartbeat = services.settings.sse_heartbeat_s
    async with hub.subscribe(account, dsn) as wake:
        services.metrics.live_streams.inc()
        try:
            if last is None:  # a fresh page: what happens from now on
                async with services.pool.acquire() as conn:
                    last = await store.latest_id(conn, account)
            resp = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",  # proxies must not buffer the stream
                }
            )
            await resp.prepare(call.request)
            try:
                await resp.write(b"retry: 3000\n: connected\n\n")
                while not hub.closed:
                    # Cleared before reading: a NOTIFY during the read wakes the next wait.
                    wake.clear()
                    async with services.pool.acquire() as conn:
                        rows = await store.since(conn, account, last, CATCH_UP_PAGE)
                    for n in rows:
                        await resp.write(_frame(n))
                        last = n.id
                    if len(rows) == CATCH_UP_PAGE:
                        continue
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=heartbeat)
                    except TimeoutError:
                        await resp.write(b": heartbeat\n\n")
                    await hub.ensure_listening(dsn)
            except ConnectionError:
                pass  # the page was closed
            except Exception as exc:
                # Headers are sent: no JSON error any more. End the stream; the client
                # reconnects with Last-Event-ID and misses nothing.
                log.warning("live stream of %s ended: %r", account, exc)
            return resp
        finally:
            services.metrics.live_streams.dec()


ROUTES = [
    Route(
        "GET",
        "/v1/me/notifications",
        inbox,
        "The citizen's notifications, newest first, with the unread count",
        "notifications",
        roles=CITIZEN,
        query=InboxQuery,
        responses={200: "A page of notifications; next_before pages on"},
        operation_id="list_my_notifications",
    ),
    Route(
        "POST",
        "/v1/me/notifications/read",
        mark_read,
        "Mark notifications read (by ids, or every one up to an id)",
        "notifications",
        roles=CITIZEN,
        body=MarkRead,
        responses={200: "How many were marked, and the unread count"},
        operation_id="mark_my_notifications_read",
    ),
    Route(
        "GET",
        "/v1/me/events",
        events,
        "Live notifications as server-sent events (resume with Last-Event-ID)",
        "notifications",
        roles=CITIZEN,
        query=EventsQuery,
        responses={
            200: "text/event-stream: `id: <notification id>` and `data: <JSON>` per"
            " notification, `: heartbeat` comments",
            503: "Too many live streams on this server (Retry-After)",
        },
        operation_id="my_live_events",
        raw_response=True,
    ),
]
