"""A newcomer on a phone: register, search Beijing South → Shanghai Hongqiao, reserve a
second-class seat, pay before the countdown ends (the confirmation also arrives live),
open the e-ticket (QR + code), change it to another train, then refund the new ticket —
every step through the real service."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.async_api import Page, expect

from reservation.domain.clock import CHINA
from tests.browser.conftest import Live
from tests.helpers import make_id_number, make_phone

# A real server, a real browser and several screens: more than the default 120 s budget.
pytestmark = pytest.mark.timeout(300)


async def register(page: Page, live: Live, name: str = "张三") -> None:
    await page.goto(live.url + "/#/me")
    await page.get_by_label("Full name").fill(name)
    await page.get_by_label("Mobile number").first.fill(make_phone())
    await page.get_by_label("Resident ID number").first.fill(make_id_number())
    await page.get_by_role("button", name="Register").click()
    await expect(page.locator("#me-name")).to_contain_text(name)


async def test_citizen_books_a_train_ticket_from_search_to_e_ticket(page: Page, live: Live) -> None:
    await register(page, live)
    tomorrow = (dt.datetime.now(CHINA) + dt.timedelta(days=1)).date().isoformat()

    await page.get_by_role("link", name="Trains").first.click()
    await page.get_by_label("From").fill("北京南")
    await page.get_by_label("To", exact=True).fill("上海虹桥")
    await page.get_by_label("Date").fill(tomorrow)
    await page.get_by_role("button", name="Search").click()
    first = page.locator("[data-train]").first
    await expect(first).to_be_visible()
    train = await first.get_attribute("data-train")
    assert train is not None
    await first.get_by_role("button", name=re.compile("Second class")).click()

    await expect(page.get_by_role("heading", name="Who travels?")).to_be_visible()
    await page.get_by_label("Seat wish").select_option("window")
    await page.get_by_role("button", name="Reserve seats").click()

    await expect(page.locator("#order-state")).to_have_text("Reserved — not paid")
    await expect(page.locator("#countdown")).to_contain_text(re.compile(r"Pay within \d\d:\d\d"))
    await page.locator("#pay").click()
    await expect(page.locator("#main .msg-ok")).to_contain_text("Paid")
    await expect(page.locator("#order-state")).to_have_text("Paid")
    # The same news arrives live (server-sent events), without reloading.
    await expect(page.locator("#toasts")).to_contain_text("Confirmed")

    await page.get_by_role("link", name="E-ticket").click()
    await expect(page.locator("#verification-code")).to_have_text(re.compile(r"^\w{4}-\w{4}$"))
    await expect(page.locator(".qr svg")).to_be_visible()
    await page.screenshot(path=str(_shot("e-ticket")), full_page=True)

    # Chinese, from the toggle; the same screen, redrawn.
    await page.get_by_role("button", name="切换到中文").click()
    await expect(page.get_by_role("heading", name="电子客票")).to_be_visible()
    await page.get_by_role("button", name="Switch to English").click()

    # 改签 to another train of the same day.
    await page.get_by_role("link", name="Change train").click()
    other = page.locator("[data-train]").first
    await expect(other).to_be_visible()
    new_train = await other.get_attribute("data-train")
    assert new_train != train
    await other.get_by_role("button", name=re.compile("Second class")).click()
    await expect(page.locator("#main .msg-ok")).to_contain_text("Changed")
    await expect(page.locator("[data-ticket]")).to_contain_text(str(new_train))

    # Refund the new ticket.
    await page.get_by_role("link", name="E-ticket").click()
    await page.get_by_role("button", name="Refund").click()
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.locator("#main .msg-ok")).to_contain_text(re.compile(r"Refunded ¥\d+"))
    await expect(page.locator("#ticket-state")).to_have_text("Refunded")


def _shot(name: str) -> object:
    from tests.browser.conftest import artifact

    return artifact(f"{name}.png")
