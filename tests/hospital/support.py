"""Shared by the hospital tests: schedule rows, publishing, booking shortcuts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reservation.domain.clock import CHINA
from tests.api_fixture import Api
from tests.helpers import register

HOSPITAL = "hosp-a"


def today(api: Api) -> dt.date:
    return api.clock.now.astimezone(CHINA).date()


def row(
    *,
    day: dt.date,
    doctor: str = "dr-li",
    department: str = "cardio",
    session: str = "morning",
    start: str = "08:00",
    end: str = "09:00",
    slot_minutes: int = 30,
    capacity: int = 2,
    counter: int | None = 0,
    title: str = "Chief physician",
    fee: str = "100",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "department_code": department,
        "department_name": department.title(),
        "doctor_code": doctor,
        "doctor_name": f"Dr {doctor}",
        "title": title,
        "specialty": "",
        "fee_cny": fee,
        "day": day.isoformat(),
        "session": session,
        "start": start,
        "end": end,
        "slot_minutes": slot_minutes,
        "capacity": capacity,
    }
    if counter is not None:
        out["counter_capacity"] = counter
    return out


async def publish(
    api: Api, rows: list[dict[str, Any]], provider: str = HOSPITAL
) -> list[dict[str, Any]]:
    resp = await api.client.post(
        f"/v1/hospital/providers/{provider}/schedules",
        json={"rows": rows},
        headers=api.staff_headers(provider),
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return list(body["sessions"])


async def doctor_id(api: Api, code: str, provider: str = HOSPITAL) -> str:
    async with api.services.pool.acquire() as conn:
        found: str = await conn.fetchval(
            "SELECT id FROM hospital_doctors WHERE provider_id = $1 AND code = $2", provider, code
        )
    return found


async def department_id(api: Api, code: str, provider: str = HOSPITAL) -> str:
    async with api.services.pool.acquire() as conn:
        found: str = await conn.fetchval(
            "SELECT id FROM hospital_departments WHERE provider_id = $1 AND code = $2",
            provider,
            code,
        )
    return found


async def slots_of(
    api: Api, doctor_code: str, day: dt.date | None = None, channel: str = "online"
) -> list[dict[str, Any]]:
    doc = await doctor_id(api, doctor_code)
    query = f"?day={day.isoformat()}" if day else ""
    resp = await api.client.get(f"/v1/hospital/doctors/{doc}/slots{query}")
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return [s for s in body["slots"] if s["channel"] == channel]


async def book(api: Api, headers: dict[str, str], slot_id: str) -> tuple[int, dict[str, Any]]:
    resp = await api.client.post(
        "/v1/hospital/registrations", json={"slot_id": slot_id}, headers=headers
    )
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def book_and_pay(api: Api, headers: dict[str, str], slot_id: str) -> dict[str, Any]:
    status, held = await book(api, headers, slot_id)
    assert status == 201, held
    resp = await api.client.post(
        f"/v1/hospital/registrations/{held['id']}/confirm", headers=headers
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def citizen(api: Api, name: str = "张三") -> dict[str, Any]:
    return await register(api.client, name)


async def my_registrations(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    resp = await api.client.get("/v1/hospital/registrations", headers=headers)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return list(body["registrations"])


async def notifications_of(api: Api, account_id: str) -> list[dict[str, Any]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, subject, payload::text AS payload FROM notifications"
            " WHERE account_id = $1 ORDER BY id",
            account_id,
        )
    return [dict(r) for r in rows]
