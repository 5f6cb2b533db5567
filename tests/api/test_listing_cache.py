"""The public slot listings reuse their catalogue part for a short while, per process, and
read the places left live: a citizen refreshing at the opening sees every hold at once,
while Postgres answers one query per listing and period, not one per refresh."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reservation.settings import Settings
from reservation.store import catalog
from tests.api_fixture import Api
from tests.helpers import register

TTL_MS = 400


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(listing_cache_ms=TTL_MS)


async def listed(api: Api) -> dict[str, Any]:
    resp = await api.client.get("/v1/slots", params={"provider_id": "hosp-a"})
    assert resp.status == 200, await resp.text()
    return {s["id"]: s for s in (await resp.json())["slots"]}


async def test_places_left_are_live_while_the_catalogue_is_reused(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=3)])
    reads = 0
    real = catalog.list_slots

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(catalog, "list_slots", counted)

    # Fifty citizens refresh at once: one Postgres read between them.
    first = await asyncio.gather(*(listed(api) for _ in range(50)))
    assert reads == 1
    assert {page[slot["id"]]["available"] for page in first} == {3}

    citizen = await register(api.client)
    resp = await api.client.post(
        "/v1/bookings", json={"slot_id": slot["id"]}, headers=citizen["headers"]
    )
    assert resp.status == 201, await resp.text()
    # Still the cached catalogue, but the hold shows at once.
    assert (await listed(api))[slot["id"]]["available"] == 2
    assert reads == 1

    # A slot published now appears once the period is over.
    [later] = await api.publish("hosp-a", [api.slot(capacity=5, hours_ahead=25)])
    assert later["id"] not in await listed(api)
    await asyncio.sleep(TTL_MS / 1000 + 0.1)
    assert (await listed(api))[later["id"]]["available"] == 5
    assert reads == 2


async def test_an_unknown_doctor_or_site_is_a_404_every_time(api: Api) -> None:
    for _ in range(2):  # a refused read is not kept
        resp = await api.client.get("/v1/hospital/doctors/no-such-doctor/slots")
        assert resp.status == 404, await resp.text()
        resp = await api.client.get("/v1/vaccine/sites/no-such-site/slots")
        assert resp.status == 404, await resp.text()
