"""The demo hospitals seed through the staff workflow, once."""

from __future__ import annotations

from reservation.hospital_seed import seed_hospitals
from tests.api_fixture import Api


async def test_demo_hospitals_have_a_week_of_schedules_and_reseeding_adds_nothing(
    api: Api,
) -> None:
    sessions = await seed_hospitals(api.services)
    assert sessions > 30
    resp = await api.client.get("/v1/hospital/hospitals")
    names = {h["id"]: h["departments"] for h in (await resp.json())["hospitals"]}
    assert names["pumch"] == 3 and names["pkufh"] == 2 and names["bjtrh"] == 2
    async with api.services.pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM slots")
        days = await conn.fetchval("SELECT count(DISTINCT day) FROM hospital_sessions")
    assert days == 7
    await seed_hospitals(api.services)
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM slots") == before
