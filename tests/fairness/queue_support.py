"""Shared steps of the waiting-room tests: a queued slot sale and its citizens."""

from __future__ import annotations

from typing import Any

from tests.api_fixture import Api
from tests.helpers import insert_citizens

RELEASE_IN_S = 60
WINDOW_S = 10


async def queued_sale(
    api: Api,
    *,
    sale_id: str = "sale-hosp-a",
    capacity: int = 5,
    slots: int = 1,
    **options: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Slots of hosp-a released in RELEASE_IN_S seconds, queued by an operator."""
    drafts = [
        api.slot(capacity=capacity, hours_ahead=24 + i, release_in_s=RELEASE_IN_S)
        for i in range(slots)
    ]
    published = await api.publish("hosp-a", drafts)
    resp = await api.client.post(
        "/v1/sales",
        json={
            "sale_id": sale_id,
            "kind": "slots",
            "provider_id": "hosp-a",
            "release_at": drafts[0]["release_at"],
            "window_seconds": WINDOW_S,
            **options,
        },
        headers=api.operator,
    )
    assert resp.status == 201, await resp.text()
    sale: dict[str, Any] = await resp.json()
    return sale, published


async def citizens(api: Api, n: int) -> list[tuple[str, dict[str, str]]]:
    return await insert_citizens(api, n)


async def join(api: Api, sale_id: str, headers: dict[str, str], status: int = 201) -> Any:
    resp = await api.client.post(f"/v1/sales/{sale_id}/queue", headers=headers)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def poll(api: Api, sale_id: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = await api.client.get(f"/v1/sales/{sale_id}/queue", headers=headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def hold(
    api: Api,
    slot_id: str,
    headers: dict[str, str],
    token: str | None = None,
    key: str | None = None,
) -> Any:
    extra = {}
    if token is not None:
        extra["Queue-Token"] = token
    if key is not None:
        extra["Idempotency-Key"] = key
    return await api.client.post(
        "/v1/bookings", json={"slot_id": slot_id}, headers={**headers, **extra}
    )


def open_the_sale(api: Api) -> None:
    """Past the release and the opening window: the draw happens on the next call."""
    api.clock.advance(RELEASE_IN_S + WINDOW_S)
