"""The durability contract at confirm: "confirmed" is said only after the Postgres commit;
with Postgres down the answer is 503 and the same request, retried, completes it."""

from __future__ import annotations

import socket

from tests.api_fixture import Api
from tests.helpers import register


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on exit: connections are refused


async def test_confirm_answers_503_while_postgres_is_down_and_a_retry_completes(
    api: Api,
) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    citizen = await register(api.client)
    hold = await (
        await api.client.post(
            "/v1/bookings", json={"slot_id": slot["id"]}, headers=citizen["headers"]
        )
    ).json()

    pool = api.services.pool
    dsn = api.services.settings.database_url
    assert dsn is not None
    pool.set_connect_args(dsn=f"postgresql://postgres@127.0.0.1:{dead_port()}/nothing")
    await pool.expire_connections()
    try:
        down = await api.client.post(
            f"/v1/bookings/{hold['id']}/confirm", headers=citizen["headers"]
        )
        assert down.status == 503
        assert down.headers["Retry-After"]
        assert (await down.json())["code"] == "store_unavailable"
    finally:
        pool.set_connect_args(dsn=dsn)
        await pool.expire_connections()

    # Not sold to anyone else meanwhile: the place stays this citizen's.
    other = await register(api.client)
    taken = await api.client.post(
        "/v1/bookings", json={"slot_id": slot["id"]}, headers=other["headers"]
    )
    assert (await taken.json())["code"] == "sold_out"

    again = await api.client.post(f"/v1/bookings/{hold['id']}/confirm", headers=citizen["headers"])
    assert again.status == 200
    assert (await again.json())["replay"] is True
    async with pool.acquire() as conn:
        state = await conn.fetchval("SELECT state FROM bookings WHERE id = $1", hold["id"])
    assert state == "confirmed"


async def test_an_exhausted_postgres_pool_answers_503_not_a_queue(api: Api) -> None:
    citizen = await register(api.client)
    pool = api.services.pool
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        resp = await api.client.get("/v1/bookings", headers=citizen["headers"])
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        assert (await resp.json())["code"] == "store_unavailable"
    finally:
        for conn in held:
            await pool.release(conn)
    assert (await api.client.get("/v1/bookings", headers=citizen["headers"])).status == 200
