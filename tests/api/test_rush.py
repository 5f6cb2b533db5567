"""Exact counts under concurrency: N attempts on M places sell exactly M."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

from tests.api_fixture import Api
from tests.helpers import make_id_number


async def _citizens(api: Api, n: int) -> list[dict[str, str]]:
    """n accounts inserted directly (registration itself is tested elsewhere)."""
    ids = [f"a{secrets.token_hex(8)}" for _ in range(n)]
    async with api.services.pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO accounts (id, name, phone, id_hmac, id_masked, birth_date)"
            " VALUES ($1, 'rush', $2, $3, 'x', '1990-01-01')",
            [(a, f"1{i:010d}", f"{make_id_number()}-{a}") for i, a in enumerate(ids)],
        )
    signer = api.services.auth.signer
    return [{"Authorization": f"Bearer {signer.issue(a)}"} for a in ids]


async def test_2000_concurrent_holds_on_150_places(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=150)])
    citizens = await _citizens(api, 2000)

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
    [headers] = await _citizens(api, 1)
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
    [headers] = await _citizens(api, 1)
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
