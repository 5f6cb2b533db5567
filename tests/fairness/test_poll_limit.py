"""Waiting-room polls are limited per account: each runs the queue's script (and admits
people), so a client polling in a loop is told to slow down instead of costing Redis."""

from __future__ import annotations

import pytest

from reservation.settings import Settings
from tests.api_fixture import Api
from tests.fairness.queue_support import citizens, join, poll, queued_sale


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(queue_poll_rate_per_account=60, queue_poll_burst_per_account=3)


async def test_a_poll_loop_gets_429_with_retry_after_and_others_are_not_slowed(
    api: Api,
) -> None:
    sale, _ = await queued_sale(api)
    (_, eager), (_, calm) = await citizens(api, 2)
    for headers in (eager, calm):
        await join(api, sale["sale_id"], headers)
    for _ in range(3):
        assert (await poll(api, sale["sale_id"], eager))["state"] == "draw_pending"
    refused = await api.client.get(f"/v1/sales/{sale['sale_id']}/queue", headers=eager)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    body = await refused.json()
    assert (body["code"], body["fields"]["scope"]) == ("rate_limited", "poll")
    # Another account's polls have their own budget.
    assert (await poll(api, sale["sale_id"], calm))["state"] == "draw_pending"
    api.clock.advance(1)  # one poll a second, as poll_after_ms asks
    assert (await poll(api, sale["sale_id"], eager))["state"] == "draw_pending"


async def test_a_rate_of_zero_switches_the_poll_limit_off(api: Api) -> None:
    room = api.services.waiting_room
    assert room.limits["poll"] is not None
    room.limits["poll"] = None  # what FAIRSEAT_QUEUE_POLL_RATE_PER_ACCOUNT=0 builds
    sale, _ = await queued_sale(api)
    [(_, headers)] = await citizens(api, 1)
    await join(api, sale["sale_id"], headers)
    for _ in range(10):
        await poll(api, sale["sale_id"], headers)
