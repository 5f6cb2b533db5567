"""Series atomicity under concurrency: many people race for scarce dose-2 places; every
series that got anything got both doses, and the counts are exact."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

from tests.api_fixture import Api
from tests.helpers import insert_citizens, make_id_number
from tests.vaccine.support import Site, citizen, publish, row


async def test_never_dose_one_without_dose_two(api: Api, site: Site) -> None:
    slots = await publish(
        api,
        site,
        [
            row(api, days_ahead=1, capacity=40),  # dose 1: plenty
            row(api, days_ahead=25, capacity=7),  # dose 2: scarce
            row(api, days_ahead=26, capacity=3),  # dose 2 elsewhere: scarce too
        ],
    )
    dose1, dose2a, dose2b = (s["id"] for s in slots)
    people = await insert_citizens(api, 40)

    async def attempt(i: int, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        second = dose2a if i % 2 else dose2b
        resp = await api.client.post(
            "/v1/vaccine/bookings",
            json={"campaign_id": "covid-adults", "slot_ids": [dose1, second]},
            headers={**headers, "Idempotency-Key": f"race-{i}"},
        )
        return resp.status, await resp.json()

    results = await asyncio.gather(*(attempt(i, h) for i, (_, h) in enumerate(people)))
    won = [(body, people[i][1]) for i, (status, body) in enumerate(results) if status == 201]
    lost = [body for status, body in results if status != 201]
    assert len(won) == 10
    assert all(b["code"] == "sold_out" and b["fields"]["dose"] == 2 for b in lost)
    available = await api.services.slots.available([dose1, dose2a, dose2b])
    assert available == {dose1: 30, dose2a: 0, dose2b: 0}

    confirms = await asyncio.gather(
        *(api.client.post(f"/v1/vaccine/bookings/{b['id']}/confirm", headers=h) for b, h in won)
    )
    assert [r.status for r in confirms] == [200] * 10
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT series_id, dose, state FROM vaccine_appointments WHERE provider_id = $1",
            site.id,
        )
        booked = await conn.fetch(
            """SELECT b.slot_id, count(*) AS n FROM bookings b
               JOIN vaccine_appointments a ON a.id = b.id
               WHERE b.state = 'confirmed' GROUP BY b.slot_id""",
        )
    per_series = Counter(r["series_id"] for r in rows)
    assert len(per_series) == 10 and set(per_series.values()) == {2}
    assert {(r["dose"], r["state"]) for r in rows} == {(1, "confirmed"), (2, "confirmed")}
    assert {r["slot_id"]: r["n"] for r in booked} == {dose1: 10, dose2a: 7, dose2b: 3}

    # In Redis too: every live hold of a series has its sibling.
    shard = int(dose1.split("-")[0][1:])
    holds: list[dict[str, str]] = []
    async for key in api.services.redis.scan_iter(
        match=f"{api.services.keys.tag(shard)}:hold:*", count=1000
    ):
        holds.append(await api.services.redis.hgetall(key))
    live = Counter(h["series"] for h in holds if h.get("state") in ("held", "confirmed"))
    assert len(live) == 10 and set(live.values()) == {2}


async def test_concurrent_confirm_and_cancel_of_one_series(api: Api, site: Site) -> None:
    """A confirm racing a cancel of the same series ends with both doses in one state."""
    slots = await publish(api, site, [row(api, days_ahead=1), row(api, days_ahead=25)])
    ids = [s["id"] for s in slots]
    for i, (_, headers) in enumerate(await insert_citizens(api, 6)):
        resp = await api.client.post(
            "/v1/vaccine/bookings",
            json={"campaign_id": "covid-adults", "slot_ids": ids},
            headers={**headers, "Idempotency-Key": f"r{i}"},
        )
        assert resp.status == 201, await resp.text()
        series = (await resp.json())["id"]
        await asyncio.gather(
            api.client.post(f"/v1/vaccine/bookings/{series}/confirm", headers=headers),
            api.client.post(f"/v1/vaccine/bookings/{series}/cancel", headers=headers),
        )
        final = await (
            await api.client.post(f"/v1/vaccine/bookings/{series}/cancel", headers=headers)
        ).json()
        assert {a["state"] for a in final["appointments"]} == {"cancelled"}
    assert await api.services.slots.available(ids) == {ids[0]: 10, ids[1]: 10}


async def test_one_parent_booked_at_once_by_several_children(api: Api, site: Site) -> None:
    """Five accounts list the same parent and book a series for them at the same moment:
    exactly one series is held (the per-person lock serialises the dose-order check)."""
    # Each child picks other days: the inventory's "one booking per resource per day"
    # cannot be what stops the duplicates, only the person's lock in Postgres.
    rows = [row(api, days_ahead=first + i) for first in (1, 30) for i in range(5)]
    slots = await publish(api, site, rows)
    number = make_id_number(dt.date(1950, 1, 1))
    children = [await citizen(api, f"子{i}") for i in range(5)]
    listed = []
    for child in children:
        resp = await api.client.post(
            "/v1/passengers", json={"name": "父", "id_number": number}, headers=child["headers"]
        )
        pid = (await resp.json())["id"]
        await api.client.post(
            f"/v1/passengers/{pid}/consent", json={"statement": "ok"}, headers=child["headers"]
        )
        listed.append(pid)

    async def attempt(i: int) -> int:
        resp = await api.client.post(
            "/v1/vaccine/bookings",
            json={
                "campaign_id": "covid-elderly",
                "passenger_id": listed[i],
                "slot_ids": [slots[i]["id"], slots[5 + i]["id"]],
            },
            headers=children[i]["headers"],
        )
        return resp.status

    statuses = await asyncio.gather(*(attempt(i) for i in range(5)))
    assert sorted(statuses) == [201, 409, 409, 409, 409]
    available = await api.services.slots.available([s["id"] for s in slots])
    assert sum(v or 0 for v in available.values()) == 10 * 10 - 2
