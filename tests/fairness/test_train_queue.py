"""A queued train date: the same waiting room in front of train orders (hold_tickets), with
the stock counted in tickets held through the queue."""

from __future__ import annotations

import datetime as dt

import pytest

from reservation.settings import Settings
from tests.api_fixture import Api
from tests.fairness.queue_support import join, poll
from tests.trains import test_orders_api as orders
from tests.trains import test_trains_api as trains


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(train_cache_ms=0)


async def test_a_queued_train_date_needs_a_token_and_counts_tickets(api: Api) -> None:
    await trains.seed(api)
    api.clock.now_ms = orders.at(trains.today(api), 12)
    # 15 days on sale, the last released daily at 08:00: this date opens tomorrow 08:00.
    day = trains.today(api) + dt.timedelta(days=15)
    resp = await api.client.post(
        "/v1/sales",
        json={"sale_id": "rail-day", "kind": "train", "train_date": str(day), "stock": 3},
        headers=api.operator,
    )
    assert resp.status == 201, await resp.text()
    sale = await resp.json()
    assert sale["release_at"] == f"{trains.today(api) + dt.timedelta(days=1)}T08:00:00+08:00"
    first = await orders.citizen(api, extra=1)  # two passengers
    second = await orders.citizen(api)
    for who in (first, second):
        await join(api, "rail-day", who["headers"])
    api.clock.now_ms = orders.at(trains.today(api) + dt.timedelta(days=1), 8) + 11_000

    # Runs are materialised by the first search of their date (as in test_orders_api).
    await trains.get(api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(day)})
    run = f"G1-{day:%Y%m%d}"
    body = orders.order_body(run, first["pax"])
    refused = await api.client.post("/v1/orders", json=body, headers=first["headers"])
    assert refused.status == 403
    assert (await refused.json())["code"] == "queue_token_required"

    states = [await poll(api, "rail-day", w["headers"]) for w in (first, second)]
    assert {s["state"] for s in states} == {"admitted"}  # 2 admissions <= 3 places
    token = states[0]["queue_token"]
    held = await api.client.post(
        "/v1/orders", json=body, headers={**first["headers"], "Queue-Token": token}
    )
    assert held.status == 201, await held.text()
    after = await poll(api, "rail-day", second["headers"])
    assert after["remaining"] == 1 and after["state"] == "admitted"  # 2 tickets counted
    # The token is bound to its account: the second citizen cannot use the first's.
    stolen = await api.client.post(
        "/v1/orders",
        json=orders.order_body(run, second["pax"]),
        headers={**second["headers"], "Queue-Token": token},
    )
    assert (await stolen.json())["code"] == "queue_token_wrong_account"
