"""An app on real Postgres and Redis with a fake clock, plus a provider and its staff key."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reservation.api.routing import SERVICES
from reservation.app import create_app
from reservation.auth import new_api_key
from reservation.services import Services
from reservation.settings import Settings
from reservation.store import accounts as account_store
from reservation.store import catalog
from reservation.workflows.rebuild_inventory import ensure_inventory_ready
from tests.helpers import FakeClock


@dataclass
class Api:
    client: TestClient[Any, Any]
    services: Services
    clock: FakeClock
    staff: dict[str, str]  # provider id -> Authorization header value
    operator: dict[str, str]

    def staff_headers(self, provider_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff[provider_id]}"}

    async def publish(
        self,
        provider_id: str,
        slots: list[dict[str, Any]],
        resources: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        resp = await self.client.post(
            f"/v1/providers/{provider_id}/slots",
            json={"resources": resources or [{"code": "dr-li", "name": "Dr Li"}], "slots": slots},
            headers=self.staff_headers(provider_id),
        )
        assert resp.status == 201, await resp.text()
        body: dict[str, Any] = await resp.json()
        return list(body["slots"])

    def slot(
        self,
        *,
        capacity: int = 5,
        hours_ahead: float = 24,
        code: str = "dr-li",
        release_in_s: float = -1,
    ) -> dict[str, Any]:
        start = self.clock.now + dt.timedelta(hours=hours_ahead)
        return {
            "resource_code": code,
            "starts_at": start.isoformat(),
            "ends_at": (start + dt.timedelta(minutes=30)).isoformat(),
            "capacity": capacity,
            "release_at": (self.clock.now + dt.timedelta(seconds=release_in_s)).isoformat(),
        }


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    clock = FakeClock()
    app = create_app(settings, clock=clock)
    async with TestClient(TestServer(app)) as client:
        services = client.app[SERVICES]  # the app's own clients, engine and metrics
        await ensure_inventory_ready(services)  # epoch 1 for this test's key prefix
        staff: dict[str, str] = {}
        async with services.pool.acquire() as conn:
            for pid, kind in (("hosp-a", "hospital"), ("hosp-b", "hospital")):
                await catalog.upsert_provider(conn, pid, f"Hospital {pid}", kind)
                key = new_api_key()
                await account_store.create_api_key(conn, api_key=key, role="staff", provider_id=pid)
                staff[pid] = key
        assert settings.operator_key is not None
        yield Api(
            client, services, clock, staff, {"Authorization": f"Bearer {settings.operator_key}"}
        )
