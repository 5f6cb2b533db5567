"""Hospital staff upload a CSV of slots with one bad row: the console lists that row by
its line and field, nothing is published; the corrected file publishes every row."""

from __future__ import annotations

import datetime as dt

import pytest
from aiohttp import ClientSession
from playwright.async_api import FilePayload, Page, expect

from reservation.domain.clock import CHINA
from tests.browser.conftest import Live

# A real server, a real browser and several screens: more than the default 120 s budget.
pytestmark = pytest.mark.timeout(300)


async def _slots_on(live: Live, day: str) -> list[dict[str, object]]:
    async with (
        ClientSession() as http,
        http.get(
            f"{live.url}/v1/providers/pumch/slots",
            params={"day": day},
            headers={"Authorization": f"Bearer {live.hospital_key}"},
        ) as resp,
    ):
        assert resp.status == 200
        slots: list[dict[str, object]] = (await resp.json())["slots"]
        return slots


async def test_provider_uploads_csv_with_a_bad_row_and_sees_it_rejected(
    page: Page, live: Live
) -> None:
    # Beyond the demo week, so the day starts empty.
    day = (dt.datetime.now(CHINA) + dt.timedelta(days=12)).date().isoformat()
    release = dt.datetime.now(CHINA).date().isoformat() + " 07:00"
    good = [
        f"cardiology-li,{day} 08:00,{day} 08:30,5,{release}",
        f"cardiology-li,{day} 08:30,{day} 09:00,5,{release}",
        f"cardiology-wang,{day} 08:00,{day} 08:30,3,{release}",
    ]
    bad = list(good)
    bad[1] = f"cardiology-li,{day} 09:30,{day} 09:00,5,{release}"  # ends before it starts
    header = "resource_code,starts_at,ends_at,capacity,release_at"

    await page.goto(live.url + "/provider")
    await page.get_by_label("Staff API key").fill(live.hospital_key)
    await page.get_by_role("button", name="Open the console").click()
    await expect(page.locator("#provider-id")).to_have_text("pumch")
    await page.get_by_role("link", name="Upload CSV").click()
    await page.set_input_files(
        "#in-file",
        files=FilePayload(
            name="slots.csv", mimeType="text/csv", buffer="\n".join([header, *bad, ""]).encode()
        ),
    )
    await expect(page.locator("#in-csv")).to_have_value("\n".join([header, *bad, ""]))
    await page.get_by_role("button", name="Check and publish").click()

    await expect(page.get_by_role("alert")).to_contain_text("Nothing was published: 1 problem")
    rows = page.locator("#csv-errors tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("td").nth(0)).to_have_text("3")  # the header is line 1
    await expect(rows.first.locator("td").nth(1)).to_have_text("ends_at")
    await page.screenshot(path=_artifact("provider-csv-rejected.png"), full_page=True)
    assert await _slots_on(live, day) == []  # all or nothing: the good rows did not go out

    await page.locator("#in-csv").fill("\n".join([header, *good, ""]))
    await page.get_by_role("button", name="Check and publish").click()
    await expect(page.locator("#main .msg-ok")).to_contain_text("Published 3 slot(s), 3 new.")
    slots = await _slots_on(live, day)
    assert len(slots) == 3

    # A doctor-schedule file goes to the hospital's own CSV route, with the same promise.
    await page.get_by_label("What the file holds").select_option("hospital")
    schedule = await page.locator("#in-csv").input_value()
    await page.locator("#in-csv").fill(schedule.replace(",morning,", ",evening,"))
    await page.get_by_role("button", name="Check and publish").click()
    await expect(page.get_by_role("alert")).to_contain_text("Nothing was published")
    await expect(page.locator("#csv-errors tbody tr").first.locator("td").nth(0)).to_have_text("2")
    await page.locator("#in-csv").fill(schedule)
    await page.get_by_role("button", name="Check and publish").click()
    await expect(page.locator("#main .msg-ok")).to_contain_text("Published 1 slot(s), 1 new.")


def _artifact(name: str) -> str:
    from tests.browser.conftest import artifact

    return str(artifact(name))
