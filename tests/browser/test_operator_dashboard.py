"""The operator watches tomorrow's G1 on the dashboard while a small rush runs: six
citizens reserve a seat each and three pay. The board's numbers move by exactly that:
remaining −6, holds +6, confirms +3. Then the audit chain verifies intact."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

import pytest
from aiohttp import ClientSession
from playwright.async_api import Page, expect

from reservation.domain.clock import CHINA
from tests.browser.conftest import Live, artifact
from tests.helpers import make_id_number, make_phone

# A real server, a real browser and several screens: more than the default 120 s budget.
pytestmark = pytest.mark.timeout(300)

RUSH = 6
PAYING = 3


async def _one_citizen(http: ClientSession, live: Live, run_id: str, n: int) -> bool:
    """Register, reserve one second-class seat VNP → AOH, pay if asked; True if paid."""
    async with http.post(
        f"{live.url}/v1/citizens",
        json={"name": f"抢票{n}", "phone": make_phone(), "id_number": make_id_number()},
    ) as resp:
        assert resp.status == 201, await resp.text()
        auth = {"Authorization": "Bearer " + (await resp.json())["token"]}
    async with http.get(f"{live.url}/v1/passengers", headers=auth) as resp:
        me: dict[str, Any] = (await resp.json())["passengers"][0]
    async with http.post(
        f"{live.url}/v1/orders",
        json={
            "run_id": run_id,
            "from": "VNP",
            "to": "AOH",
            "seat_class": "second",
            "passenger_ids": [me["id"]],
        },
        headers={**auth, "Idempotency-Key": f"rush-{n}"},
    ) as resp:
        assert resp.status == 201, await resp.text()
        order = await resp.json()
    if n >= PAYING:
        return False
    async with http.post(
        f"{live.url}/v1/orders/{order['id']}/pay",
        headers={**auth, "Idempotency-Key": f"pay-{n}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
    return True


async def _number(page: Page, element_id: str) -> int:
    loc = page.locator(f"#{element_id}")
    await expect(loc).to_have_text(re.compile(r"^\d+$"))
    return int(await loc.inner_text())


async def test_operator_dashboard_shows_a_sale_changing_during_a_rush(
    page: Page, live: Live
) -> None:
    run_id = "G1-" + (dt.datetime.now(CHINA) + dt.timedelta(days=1)).strftime("%Y%m%d")
    await page.goto(live.url + "/operator")
    await page.get_by_label("Operator key").fill(live.operator_key)
    await page.get_by_role("button", name="Open the dashboard").click()
    await page.get_by_label("Train run", exact=True).fill(run_id)
    await page.get_by_role("button", name="Watch").click()
    await expect(page.get_by_role("heading", name=run_id)).to_be_visible()

    remaining = await _number(page, "remaining")
    holds = await _number(page, "holds-total")
    confirms = await _number(page, "confirms-total")
    await expect(page.locator("#sales")).to_contain_text("open")

    async with ClientSession() as http:
        paid = await asyncio.gather(*(_one_citizen(http, live, run_id, n) for n in range(RUSH)))
    assert sum(paid) == PAYING

    # The board polls once a second (余票 is cached up to 2 s): wait for exact values.
    await expect(page.locator("#remaining")).to_have_text(str(remaining - RUSH))
    await expect(page.locator("#holds-total")).to_have_text(str(holds + RUSH))
    await expect(page.locator("#confirms-total")).to_have_text(str(confirms + PAYING))
    await expect(page.locator("#dead")).to_have_text("0")
    await page.screenshot(path=str(artifact("operator-live-after-rush.png")), full_page=True)

    await page.get_by_role("link", name="Audit log").click()
    await page.get_by_role("button", name="Verify the chain").click()
    await expect(page.locator("#audit-result")).to_contain_text("Intact")
