"""The demo vaccination data: ~1,800 Guangdong sites, sessions where a series fits."""

from __future__ import annotations

import datetime as dt

from reservation.vaccine_seed import CITIES, seed_vaccine
from tests.api_fixture import Api
from tests.vaccine.support import book_ok, citizen, local_today


async def test_seed_makes_the_province_and_a_bookable_series(api: Api) -> None:
    count = await seed_vaccine(api.services)
    assert 1700 <= count <= 1900
    assert await seed_vaccine(api.services) == count  # once only
    async with api.services.pool.acquire() as conn:
        cities = await conn.fetchval("SELECT count(DISTINCT city_code) FROM vaccine_sites")
        districts = await conn.fetchval(
            "SELECT count(DISTINCT (city_code, district)) FROM vaccine_sites"
        )
    assert cities == len(CITIES) == 21
    assert districts == sum(len(c[4]) for c in CITIES)
    resp = await api.client.get("/v1/vaccine/sites?city=深圳&district=南山区")
    assert len((await resp.json())["sites"]) == 20

    tomorrow = local_today(api) + dt.timedelta(days=1)
    resp = await api.client.get(
        f"/v1/vaccine/sites?city=广州&product=covid-inact&day={tomorrow.isoformat()}"
    )
    [site] = (await resp.json())["sites"]
    assert site["available"] == 4 * 30
    resp = await api.client.get(f"/v1/vaccine/sites/{site['id']}/slots?product=covid-inact&days=62")
    slots = (await resp.json())["slots"]
    first = slots[0]
    day1 = dt.date.fromisoformat(first["day"])
    second = next(s for s in slots if dt.date.fromisoformat(s["day"]) == day1 + dt.timedelta(28))
    alice = await citizen(api)
    await book_ok(api, alice, [first["id"], second["id"]])
