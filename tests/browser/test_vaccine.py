"""A vaccine series for a parent, on a phone: a citizen adds their father (born 1950) to
their list, records his consent, finds a Guangzhou site for the 60-and-over COVID-19
campaign, picks dose 1 and a dose 2 inside the product's interval, sees him eligible,
reserves both doses at once, confirms, and reads his vaccination record."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Live, artifact
from tests.browser.test_citizen_train import register
from tests.helpers import make_id_number

# A real server, a real browser and several screens: more than the default 120 s budget.
pytestmark = pytest.mark.timeout(300)


async def test_citizen_books_a_two_dose_series_for_a_parent(page: Page, live: Live) -> None:
    await register(page, live, name="王小明")

    await page.get_by_role("link", name="Home").click()
    await page.get_by_role("link", name="Passengers").click()
    await page.get_by_label("Full name").fill("王父")
    await page.get_by_label("Resident ID number").fill(make_id_number(dt.date(1950, 5, 1)))
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#main .msg-ok")).to_contain_text("王父 was added")

    await page.get_by_role("link", name="Home").click()
    await page.get_by_role("link", name="Vaccination").click()
    who = page.get_by_label("Who is being vaccinated?")
    await who.select_option(index=1)  # the account holder comes first
    await expect(who.locator("option:checked")).to_contain_text("王父")
    await page.get_by_label("How did they agree").fill("Agreed in person")
    await page.get_by_label("Vaccine").select_option("covid-elderly")
    await page.get_by_label("City").fill("广州")
    await page.get_by_role("button", name="Find sites").click()
    await page.locator("[data-site]").first.click()

    await page.get_by_role("button", name=re.compile(r"^Dose 1: ")).first.click()
    await expect(page.get_by_role("heading", name="Dose 2")).to_be_visible()
    await page.get_by_role("button", name=re.compile(r"^Dose 2: ")).first.click()
    await expect(page.locator("#eligibility")).to_contain_text("Eligible for dose 1")
    await page.locator("#reserve").click()

    await expect(page.locator("#series-state")).to_have_text("Reserved — not paid")
    await expect(page.locator("#countdown")).to_contain_text("Pay within")
    await expect(page.locator("[data-dose]")).to_have_count(2)
    await expect(page.get_by_text("王父")).to_be_visible()
    await page.locator("#pay").click()
    await expect(page.locator("#main .msg-ok")).to_contain_text("Confirmed")
    await expect(page.locator("#series-state")).to_have_text("Confirmed")
    await expect(page.locator("[data-dose] .dose-state")).to_have_text(["Confirmed", "Confirmed"])
    await expect(page.locator("[data-dose] .code")).to_have_count(2)
    await page.screenshot(path=str(artifact("vaccine-series-confirmed.png")), full_page=True)

    await page.get_by_role("link", name="Vaccination record").click()
    await expect(page.locator("#record-person")).to_contain_text("王父")
    await expect(page.locator("[data-product=covid-inact] li")).to_have_count(2)
