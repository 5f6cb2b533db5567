"""Helpers of the vaccination tests: sessions, citizens with parents, booking calls."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from reservation.auth import new_api_key
from reservation.domain.clock import CHINA
from reservation.store import accounts as account_store
from reservation.store import catalog
from reservation.store import vaccine as store
from tests.api_fixture import Api
from tests.helpers import make_id_number, make_phone


@dataclass(frozen=True)
class Site:
    id: str
    headers: dict[str, str]


async def make_site(api: Api, site_id: str, district: str = "天河区") -> Site:
    """A vaccination site in Guangzhou with a staff key of its own."""
    key = new_api_key()
    async with api.services.pool.acquire() as conn:
        await catalog.upsert_provider(conn, site_id, f"{district}接种点 {site_id}", "vaccination")
        await store.insert_sites(
            conn, [(site_id, "广东省", "4401", "广州市", "Guangzhou", district, "1 Test Road")]
        )
        await account_store.create_api_key(conn, api_key=key, role="staff", provider_id=site_id)
    return Site(site_id, {"Authorization": f"Bearer {key}"})


def local_today(api: Api) -> dt.date:
    return api.clock.now.astimezone(CHINA).date()


def row(
    api: Api,
    *,
    product: str = "covid-inact",
    days_ahead: int = 1,
    start: str = "09:00",
    end: str = "10:00",
    capacity: int = 10,
) -> dict[str, Any]:
    day = local_today(api) + dt.timedelta(days=days_ahead)
    return {
        "product": product,
        "day": day.isoformat(),
        "start": start,
        "end": end,
        "capacity": capacity,
    }


async def publish(api: Api, site: Site, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resp = await api.client.post(
        f"/v1/providers/{site.id}/vaccine/sessions", json={"rows": rows}, headers=site.headers
    )
    assert resp.status == 201, await resp.text()
    slots: list[dict[str, Any]] = (await resp.json())["slots"]
    return slots


async def two_dose_slots(
    api: Api,
    site: Site,
    *,
    gap: int = 28,
    capacity: int = 10,
    dose2_capacity: int | None = None,
    days_ahead: int = 1,
) -> tuple[str, str]:
    """A dose-1 slot ``days_ahead`` (tomorrow) and a dose-2 slot ``gap`` days later."""
    first, second = await publish(
        api,
        site,
        [
            row(api, days_ahead=days_ahead, capacity=capacity),
            row(api, days_ahead=days_ahead + gap, capacity=dose2_capacity or capacity),
        ],
    )
    return first["id"], second["id"]


async def citizen(
    api: Api, name: str = "张三", birth: dt.date = dt.date(1990, 1, 1)
) -> dict[str, Any]:
    """A registered citizen; keeps their ID number (``id_number``) for the test."""
    number = make_id_number(birth)
    resp = await api.client.post(
        "/v1/citizens", json={"name": name, "phone": make_phone(), "id_number": number}
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    body["headers"] = {"Authorization": f"Bearer {body['token']}"}
    body["id_number"] = number
    return body


async def add_parent(
    api: Api, who: dict[str, Any], birth: dt.date = dt.date(1950, 5, 1), consent: bool = True
) -> str:
    resp = await api.client.post(
        "/v1/passengers",
        json={"name": "张父", "id_number": make_id_number(birth)},
        headers=who["headers"],
    )
    assert resp.status == 201, await resp.text()
    passenger_id: str = (await resp.json())["id"]
    if consent:
        resp = await api.client.post(
            f"/v1/passengers/{passenger_id}/consent",
            json={"statement": "Agreed by phone"},
            headers=who["headers"],
        )
        assert resp.status == 201, await resp.text()
    return passenger_id


async def book(
    api: Api,
    who: dict[str, Any],
    slot_ids: list[str],
    *,
    campaign: str = "covid-adults",
    passenger_id: str | None = None,
    key: str | None = None,
    **extra: Any,
) -> Any:
    body: dict[str, Any] = {"campaign_id": campaign, "slot_ids": slot_ids, **extra}
    if passenger_id is not None:
        body["passenger_id"] = passenger_id
    headers = dict(who["headers"])
    if key is not None:
        headers["Idempotency-Key"] = key
    return await api.client.post("/v1/vaccine/bookings", json=body, headers=headers)


async def book_ok(api: Api, who: dict[str, Any], slot_ids: list[str], **kw: Any) -> dict[str, Any]:
    resp = await book(api, who, slot_ids, **kw)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def confirm(api: Api, who: dict[str, Any], series_id: str) -> Any:
    return await api.client.post(
        f"/v1/vaccine/bookings/{series_id}/confirm", headers=who["headers"]
    )


async def booked_and_confirmed(
    api: Api, who: dict[str, Any], slot_ids: list[str], **kw: Any
) -> dict[str, Any]:
    held = await book_ok(api, who, slot_ids, **kw)
    resp = await confirm(api, who, held["id"])
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def record(api: Api, who: dict[str, Any], passenger_id: str | None = None) -> Any:
    query = f"?passenger_id={passenger_id}" if passenger_id else ""
    return await api.client.get(f"/v1/vaccine/record{query}", headers=who["headers"])
