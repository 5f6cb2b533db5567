"""Test helpers: valid ID numbers, a controllable clock, API shortcuts."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp.test_utils import TestClient
from stdnum.cn import ric

from reservation.domain.clock import CHINA

if TYPE_CHECKING:
    from tests.api_fixture import Api

_serial = itertools.count(1)


def make_id_number(birth: dt.date = dt.date(1990, 1, 1), region: str = "110105") -> str:
    """A valid 18-digit resident ID number, different on every call."""
    body = f"{region}{birth:%Y%m%d}{next(_serial) % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


_phones = itertools.count(13_800_000_000)


def make_phone() -> str:
    return str(next(_phones))


class FakeClock:
    """Milliseconds since the epoch, moved by the test."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        # Starts at the real time: Redis TTLs (PEXPIREAT) run on the real clock.
        start = start or dt.datetime.now(CHINA)
        self.now_ms = int(start.timestamp() * 1000)

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)

    @property
    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now_ms / 1000, tz=dt.UTC)


async def register(client: TestClient[Any, Any], name: str = "张三") -> dict[str, Any]:
    resp = await client.post(
        "/v1/citizens", json={"name": name, "phone": make_phone(), "id_number": make_id_number()}
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    body["headers"] = {"Authorization": f"Bearer {body['token']}"}
    return body


async def insert_citizens(api: Api, n: int, name: str = "rush") -> list[tuple[str, dict[str, str]]]:
    """n accounts inserted straight into Postgres (registration is tested on its own), with
    their bearer headers: (account id, headers) each."""
    ids = [f"a{secrets.token_hex(8)}" for _ in range(n)]
    people = [f"{make_id_number()}-{a}" for a in ids]
    async with api.services.pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO accounts (id, name, phone, id_hmac, id_masked, birth_date)"
            " VALUES ($1, $2, $3, $4, 'x', '1990-01-01')",
            [(a, name, f"1{i:010d}", p) for i, (a, p) in enumerate(zip(ids, people, strict=True))],
        )
    signer = api.services.auth.signer
    return [
        (a, {"Authorization": f"Bearer {signer.issue(a, person=p)}"})
        for a, p in zip(ids, people, strict=True)
    ]
