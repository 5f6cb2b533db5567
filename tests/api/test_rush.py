"""Exact counts under concurrency: N attempts on M places sell exactly M."""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.api_fixture import Api
from tests.helpers import insert_citizens


async def test_2000_concurrent_holds_on_150_places(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=150)])
    citizens = [h for _, h in await insert_citizens(api, 2000)]

    async def attempt(headers: dict[str, str]) -> int:
        resp = await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=headers)
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(attempt(h) for h in citizens))
    assert statuses.count(201) == 150
    assert statuses.count(409) == 1850
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == 0


async def test_concurrent_retries_of_one_request_hold_once(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=10)])
    [headers] = [h for _, h in await insert_citizens(api, 1)]
    headers = {**headers, "Idempotency-Key": "double-click"}

    async def attempt() -> str:
        resp = await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=headers)
        assert resp.status in (200, 201)
        return str((await resp.json())["id"])

    ids = await asyncio.gather(*(attempt() for _ in range(50)))
    assert len(set(ids)) == 1
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == 9


async def test_confirm_races_expiry_one_outcome(api: Api) -> None:
    """Confirm and the sweeper racing at the deadline: the place is sold or returned,
    never both."""
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    [headers] = [h for _, h in await insert_citizens(api, 1)]
    hold = await (
        await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=headers)
    ).json()
    deadline = dt.datetime.fromisoformat(hold["deadline"])
    api.clock.now_ms = int(deadline.timestamp() * 1000)  # exactly at the deadline
    confirm, expired = await asyncio.gather(
        api.client.post(f"/v1/bookings/{hold['id']}/confirm", headers=headers),
        api.services.slots.expire_due(int(hold["id"][1:].split("-")[0]), api.clock(), 10),
    )
    available = (await api.services.slots.available([slot["id"]]))[slot["id"]]
    if confirm.status == 200:
        assert (expired, available) == (0, 0)
    else:
        assert (await confirm.json())["code"] in ("hold_expired", "hold_not_live")
        assert (expired, available) == (1, 1)
