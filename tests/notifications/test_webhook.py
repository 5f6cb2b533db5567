"""The webhook sender against a real local HTTP server: 5xx and timeouts retried with the
same Idempotency-Key, a 4xx given up, and through the notifier exactly one success
recorded per notification."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from reservation.notifications.senders import WebhookSender
from reservation.workers.notifier import Notifier
from tests.api_fixture import Api
from tests.helpers import insert_citizens
from tests.notifications.support import record_plain


@dataclass
class Receiver:
    """A webhook receiver answering from a script of statuses (then 200); "hang" never
    answers (the sender's timeout must fire)."""

    script: list[int | str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (key, body)
    accepted: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers["Idempotency-Key"]
        self.requests.append((key, body))
        step = self.script.pop(0) if self.script else 200
        if step == "hang":
            await asyncio.sleep(3600)
        assert isinstance(step, int)
        if step == 200:
            self.accepted.append(key)
        return web.json_response({}, status=step)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    app = web.Application()
    app.router.add_post("/hook", got.handle)
    server = TestServer(app)
    await server.start_server()
    got.url = str(server.make_url("/hook"))
    try:
        yield got
    finally:
        await server.close()


async def test_server_errors_and_timeouts_are_retried_with_one_key(
    api: Api, receiver: Receiver
) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    [nid] = await record_plain(api, account, 1)
    receiver.script = [500, "hang", 503]
    hook = WebhookSender(receiver.url, timeout_s=0.5, attempts=5, backoff_s=0.01)
    try:
        await Notifier(api.services, [hook]).run_once()
    finally:
        await hook.aclose()
    keys = [k for k, _ in receiver.requests]
    assert keys == [f"{nid}:webhook"] * 4
    assert receiver.accepted == [f"{nid}:webhook"]
    body = receiver.requests[-1][1]
    assert (body["id"], body["account_id"], body["kind"]) == (nid, account, "confirmed")
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT channel, outcome, attempts FROM notification_deliveries")
    assert [tuple(r) for r in rows] == [("webhook", "delivered", 1)]


async def test_a_pass_that_keeps_failing_retries_on_a_later_pass(
    api: Api, receiver: Receiver
) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    [nid] = await record_plain(api, account, 1)
    receiver.script = [502, 502, 502]
    hook = WebhookSender(receiver.url, attempts=2, backoff_s=0.01)
    notifier = Notifier(api.services, [hook])
    try:
        await notifier.run_once()  # two attempts, both 502: retried later
        assert len(receiver.requests) == 2 and receiver.accepted == []
        api.clock.advance(60)
        await notifier.run_once()  # 502 again, then 200
        await notifier.run_once()
        api.clock.advance(3600)
        await notifier.run_once()  # delivered: never sent again
    finally:
        await hook.aclose()
    assert receiver.accepted == [f"{nid}:webhook"]
    assert len(receiver.requests) == 4
    async with api.services.pool.acquire() as conn:
        outcome = await conn.fetchval("SELECT outcome FROM notification_deliveries")
        left = await conn.fetchval("SELECT count(*) FROM notification_pending")
    assert (outcome, left) == ("delivered", 0)


async def test_a_client_error_is_given_up_at_once(api: Api, receiver: Receiver) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    await record_plain(api, account, 1)
    receiver.script = [400]
    hook = WebhookSender(receiver.url, attempts=5, backoff_s=0.01)
    try:
        await Notifier(api.services, [hook]).run_once()
        api.clock.advance(3600)
        await Notifier(api.services, [hook]).run_once()
    finally:
        await hook.aclose()
    assert len(receiver.requests) == 1
    async with api.services.pool.acquire() as conn:
        outcome = await conn.fetchval("SELECT outcome FROM notification_deliveries")
    assert outcome == "failed"
