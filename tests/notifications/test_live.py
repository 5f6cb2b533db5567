"""The live page: server-sent events woken through Postgres LISTEN/NOTIFY, resumable with
Last-Event-ID, heartbeats, and a bounded number of streams per process."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from reservation.app import create_app
from reservation.notifications.record import NotificationKind, record_notification
from reservation.settings import Settings
from tests.api_fixture import Api
from tests.helpers import insert_citizens
from tests.notifications.support import record_plain

# A guard against a hang, not a timing assertion: every awaited event is already due.
GUARD_S = 10


async def next_frame(resp: ClientResponse) -> dict[str, str]:
    """The next SSE frame (fields up to the blank line); comments under the key ":"."""
    frame: dict[str, str] = {}
    while True:
        raw = await asyncio.wait_for(resp.content.readline(), GUARD_S)
        assert raw, "stream ended"
        line = raw.decode().rstrip("\n")
        if line == "":
            if frame:
                return frame
            continue
        name, _, value = line.partition(":")
        frame[name or ":"] = value.strip()


async def next_event(resp: ClientResponse) -> dict[str, Any]:
    while True:
        frame = await next_frame(resp)
        if "data" in frame:
            data: dict[str, Any] = orjson.loads(frame["data"])
            assert frame["id"] == str(data["id"])
            return data


async def test_a_live_event_arrives_and_the_stream_resumes_after_it(api: Api) -> None:
    [(me, headers), (other, _)] = await insert_citizens(api, 2)
    before = await record_plain(api, me, 1, tag="old")  # before the page opened: not sent
    resp = await api.client.get("/v1/me/events", headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert (await next_frame(resp))[":"] == "connected"

    # Recorded by "another process": its own connection, outside the app's pool.
    settings = api.services.settings
    assert settings.database_url is not None
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            await record_notification(
                conn,
                account_id=other,
                kind=NotificationKind.HELD,
                subject="not:mine",
                payload={},
                dedupe_key="other:1",
                at=api.clock.now,
            )
            await record_notification(
                conn,
                account_id=me,
                kind=NotificationKind.CONFIRMED,
                subject="booking:b1",
                payload={"booking_id": "b1"},
                dedupe_key="mine:1",
                at=api.clock.now,
            )
    finally:
        await conn.close()
    live = await next_event(resp)
    assert (live["kind"], live["subject"], live["payload"]) == (
        "confirmed",
        "booking:b1",
        {"booking_id": "b1"},
    )
    assert live["id"] > before[0]
    resp.close()

    # Offline meanwhile: two more. Reconnecting with Last-Event-ID sends exactly those.
    missed = await record_plain(api, me, 2, tag="missed")
    resp = await api.client.get(
        "/v1/me/events", headers={**headers, "Last-Event-ID": str(live["id"])}
    )
    assert resp.status == 200
    assert [(await next_event(resp))["id"] for _ in missed] == missed
    resp.close()

    # ?after= does the same for clients that cannot set the header; from 0: everything.
    resp = await api.client.get("/v1/me/events", params={"after": "0"}, headers=headers)
    got = [(await next_event(resp))["id"] for _ in range(4)]
    assert got == [before[0], live["id"], *missed]
    resp.close()


async def test_heartbeats_keep_an_idle_stream_open(settings: Settings, api: Api) -> None:
    app = create_app(settings.replace(sse_heartbeat_s=1), clock=api.clock)
    async with TestClient(TestServer(app)) as client:
        [(_, headers)] = await insert_citizens(api, 1)
        resp = await client.get("/v1/me/events", headers=headers)
        assert (await next_frame(resp))[":"] == "connected"
        assert (await next_frame(resp))[":"] == "heartbeat"
        resp.close()


async def test_streams_beyond_the_cap_get_503_with_retry_after(
    settings: Settings, api: Api
) -> None:
    app = create_app(settings.replace(sse_max_streams=2), clock=api.clock)
    async with TestClient(TestServer(app)) as client:
        [(_, a), (_, b)] = await insert_citizens(api, 2)
        first = await client.get("/v1/me/events", headers=a)
        second = await client.get("/v1/me/events", headers=b)
        assert (first.status, second.status) == (200, 200)
        refused = await client.get("/v1/me/events", headers=a)
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "5"
        assert (await refused.json())["code"] == "too_many_streams"
        first.close()
        second.close()


async def test_a_bad_last_event_id_is_a_4xx(api: Api) -> None:
    [(_, headers)] = await insert_citizens(api, 1)
    resp = await api.client.get("/v1/me/events", headers={**headers, "Last-Event-ID": "abc"})
    assert resp.status == 422
    resp = await api.client.get("/v1/me/events", params={"after": "-1"}, headers=headers)
    assert resp.status == 422
    resp = await api.client.get("/v1/me/events")
    assert resp.status == 401


async def test_every_process_wakes_its_own_streams(settings: Settings, api: Api) -> None:
    """Two apps (as two worker processes: each its own pool and LISTEN connection); a
    citizen with a page open on each sees the event on both."""
    [(me, headers)] = await insert_citizens(api, 1)
    other_app = create_app(settings, clock=api.clock)
    async with TestClient(TestServer(other_app)) as other:
        here = await api.client.get("/v1/me/events", headers=headers)
        there = await other.get("/v1/me/events", headers=headers)
        for resp in (here, there):
            assert (await next_frame(resp))[":"] == "connected"
        [nid] = await record_plain(api, me, 1)
        assert [(await next_event(r))["id"] for r in (here, there)] == [nid, nid]
        here.close()
        there.close()
