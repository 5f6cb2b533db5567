"""Every screen of the three pages opens in both languages without a script error (the
``page`` fixture fails on any), with its heading focused; the small flows not covered by
the journey tests work: sign out and in, remove a passenger, cancel an unpaid order, a
refused waitlist filing, an unknown waiting room, the staff and operator tabs."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.async_api import Page, expect

from reservation.domain.clock import CHINA
from tests.browser.conftest import Live, artifact
from tests.helpers import make_id_number, make_phone

pytestmark = pytest.mark.timeout(300)

CITIZEN_SCREENS = [
    "#/",
    "#/me",
    "#/passengers",
    "#/trains",
    "#/orders",
    "#/hospital",
    "#/hospital/mine",
    "#/vaccine",
    "#/vaccine/record",
    "#/waitlist",
    "#/inbox",
]


async def _heading_has_focus(page: Page) -> None:
    await expect(page.locator("#main h1")).to_be_focused()


async def test_every_screen_in_both_languages_and_the_small_flows(page: Page, live: Live) -> None:
    await page.goto(live.url + "/#/orders")
    await expect(page.locator("#main")).to_contain_text("Please sign in or register first.")
    phone_and_id = await _register_keeping_credentials(page, live)

    for lang in ("en", "zh"):
        for screen in CITIZEN_SCREENS:
            await page.goto(f"{live.url}/{screen}")
            await expect(page.locator("#main h1")).not_to_have_text(re.compile("Loading|加载"))
            await _heading_has_focus(page)
            name = screen.strip("#/").replace("/", "-") or "home"
            await page.screenshot(path=str(artifact(f"screen-{lang}-{name}.png")))
        if lang == "en":
            await page.get_by_role("button", name="切换到中文").click()
            await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await page.get_by_role("button", name="Switch to English").click()

    # Sign out, sign in again.
    await page.goto(live.url + "/#/me")
    await page.get_by_role("button", name="Sign out").click()
    await page.locator("#si-phone").fill(phone_and_id[0])
    await page.locator("#si-id").fill(phone_and_id[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#me-name")).to_contain_text("赵六")

    # Add and remove a passenger; a bad ID number is shown at its field.
    await page.goto(live.url + "/#/passengers")
    await page.get_by_label("Full name").fill("钱七")
    await page.get_by_label("Resident ID number").fill("110105194912310021")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#in-id_number")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#main .field-error")).to_contain_text("check digit")
    await page.get_by_label("Resident ID number").fill(make_id_number())
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#passenger-list li")).to_have_count(2)
    await page.get_by_role("button", name="Remove 钱七").click()
    await expect(page.locator("#passenger-list li")).to_have_count(1)

    # Reserve, then cancel without paying.
    tomorrow = (dt.datetime.now(CHINA) + dt.timedelta(days=1)).date().isoformat()
    await page.goto(f"{live.url}/#/trains?from=VNP&to=AOH&date={tomorrow}")
    await (
        page.locator("[data-train]")
        .first.get_by_role("button", name=re.compile("Second class"))
        .click()
    )
    await page.get_by_role("button", name="Reserve seats").click()
    await expect(page.locator("#order-state")).to_have_text("Reserved — not paid")
    await page.get_by_role("button", name="Cancel order").click()
    await expect(page.locator("#order-state")).to_have_text("Cancelled")

    # The waitlist refuses a trip that is not sold out, and says why.
    await page.goto(
        f"{live.url}/#/waitlist/new?run=G1-{tomorrow.replace('-', '')}&from=VNP&to=AOH"
        f"&cls=second&train=G1&date={tomorrow}&departs={tomorrow}T06:00:00%2B08:00"
    )
    await page.get_by_role("button", name="Join the waitlist").click()
    await expect(page.locator("#main .msg-error")).to_be_visible()

    # An unknown waiting room answers with a message, not a blank page.
    await page.goto(live.url + "/#/queue/no-such-sale")
    await expect(page.locator("#main .msg-error")).to_be_visible()

    # Staff tabs (a hospital key sees the hospital day, not the vaccination day).
    await page.goto(live.url + "/provider")
    await page.get_by_label("Staff API key").fill("sk_wrong")
    await page.get_by_role("button", name="Open the console").click()
    await expect(page.locator("#main .msg-error")).to_be_visible()
    await page.get_by_label("Staff API key").fill(live.hospital_key)
    await page.get_by_role("button", name="Open the console").click()
    for tab in ("Upload CSV", "Bookings of a day", "Hospital day", "Publish"):
        await page.get_by_role("link", name=tab).click()
        await _heading_has_focus(page)
    await expect(page.get_by_role("link", name="Vaccination day")).to_have_count(0)

    # A doctor's session from the form; a second time it is recognised, not duplicated.
    await page.get_by_role("link", name="Doctor schedule").click()
    await page.get_by_label("Doctor code").fill("dr-form")
    await page.get_by_label("Doctor's name").fill("Dr Form 冯医生")
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#staff-msg")).to_contain_text("1 new")
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#staff-msg")).to_contain_text("0 new")
    await page.get_by_label("Session").select_option("afternoon")  # 08:00 is not afternoon
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#staff-msg .msg-error")).to_be_visible()

    # A vaccination site's staff: its own tabs, a session from the form, its day.
    site = await page.context.new_page()
    await site.goto(live.url + "/provider")
    await site.get_by_label("Staff API key").fill(live.vaccine_key)
    await site.get_by_role("button", name="Open the console").click()
    await expect(site.get_by_role("link", name="Hospital day")).to_have_count(0)
    await site.get_by_role("link", name="Vaccination sessions").click()
    await site.get_by_label("Vaccine").select_option("flu")
    later = (dt.datetime.now(CHINA) + dt.timedelta(days=20)).date().isoformat()
    await site.get_by_label("Day").fill(later)  # beyond the demo sessions
    await site.get_by_role("button", name="Publish").click()
    await expect(site.locator("#staff-msg")).to_contain_text("1 new")
    await site.get_by_role("link", name="Vaccination day").click()
    await expect(site.get_by_role("heading", name="Appointments")).to_be_visible()
    await site.close()

    # The dashboard takes only an operator key (not the staff key of this tab).
    await page.goto(live.url + "/operator")
    await page.get_by_label("Operator key").fill(live.hospital_key)
    await page.get_by_role("button", name="Open the dashboard").click()
    await expect(page.locator("#main .msg-error")).to_contain_text("not an operator key")
    await page.get_by_label("Operator key").fill(live.operator_key)
    await page.get_by_role("button", name="Open the dashboard").click()
    await page.get_by_role("link", name="Audit log").click()
    await _heading_has_focus(page)


async def _register_keeping_credentials(page: Page, live: Live) -> tuple[str, str]:
    phone, number = make_phone(), make_id_number()
    await page.goto(live.url + "/#/me")
    await page.get_by_label("Full name").fill("赵六")
    await page.get_by_label("Mobile number").first.fill(phone)
    await page.get_by_label("Resident ID number").first.fill(number)
    await page.get_by_role("button", name="Register").click()
    await expect(page.locator("#me-name")).to_contain_text("赵六")
    return phone, number
