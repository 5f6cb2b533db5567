"""A hospital registration on a phone: staff have published Dr Web's afternoon; a citizen
finds hospital → department → doctor → time, books, pays before the countdown ends and
gets a verification code. The hospital then cancels the session from the provider
console; the citizen sees the registration cancelled and the story in the inbox."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from aiohttp import ClientSession
from playwright.async_api import Page, expect

from reservation.domain.clock import CHINA
from tests.browser.conftest import Live, artifact
from tests.browser.test_citizen_train import register

# A real server, a real browser and several screens: more than the default 120 s budget.
pytestmark = pytest.mark.timeout(300)


async def _publish_afternoon(live: Live, day: str) -> None:
    row = {
        "department_code": "cardio-web",
        "department_name": "Cardiology 心内科",
        "doctor_code": "dr-web",
        "doctor_name": "Dr Web 韦医生",
        "title": "Chief physician",
        "specialty": "Arrhythmia",
        "fee_cny": "60",
        "day": day,
        "session": "afternoon",
        "start": "14:00",
        "end": "15:00",
        "slot_minutes": 30,
        "capacity": 3,
        "counter_capacity": 0,
    }
    async with (
        ClientSession() as http,
        http.post(
            f"{live.url}/v1/hospital/providers/pumch/schedules",
            json={"rows": [row]},
            headers={"Authorization": f"Bearer {live.hospital_key}"},
        ) as resp,
    ):
        assert resp.status == 201, await resp.text()


async def test_citizen_registers_with_a_doctor_and_the_hospital_cancels_the_session(
    page: Page, live: Live
) -> None:
    day = (dt.datetime.now(CHINA) + dt.timedelta(days=1)).date().isoformat()
    await _publish_afternoon(live, day)
    await register(page, live, name="李四")

    await page.get_by_role("link", name="Home").click()
    await page.get_by_role("link", name="Hospital appointment").click()
    await page.get_by_role("link", name="北京协和医院").click()
    await page.get_by_role("link", name="Cardiology 心内科").click()
    await page.get_by_role("link", name="Dr Web 韦医生").click()
    await page.get_by_role("button", name=f"Book {day} 14:00–14:30").click()

    await expect(page.locator("#reg-state")).to_have_text("Reserved — not paid")
    await expect(page.locator("#countdown")).to_contain_text("Pay within")
    await page.locator("#pay").click()
    await expect(page.locator("#main .msg-ok")).to_contain_text("Paid")
    await expect(page.locator("#reg-state")).to_have_text("Paid")
    await expect(page.locator("#reg-code")).to_have_text(re.compile(r"^\w{8}$"))
    code = await page.locator("#reg-code").inner_text()
    await page.screenshot(path=str(artifact("hospital-registration-paid.png")), full_page=True)

    staff = await page.context.new_page()
    await staff.goto(live.url + "/provider")
    await staff.get_by_label("Staff API key").fill(live.hospital_key)
    await staff.get_by_role("button", name="Open the console").click()
    await staff.get_by_role("link", name="Hospital day").click()
    # The screen is drawn on the hashchange, after the click returns: until then "Day" is
    # the publishing form's field on the screen before (a CI run filled that one, and
    # "Show" then listed today's empty day).
    await expect(staff.get_by_role("heading", name="Hospital day")).to_be_visible()
    await staff.get_by_label("Day").fill(day)
    await staff.get_by_role("button", name="Show").click()
    booked = staff.locator("[data-registration]")
    await expect(booked).to_have_count(1)
    await expect(booked).to_contain_text("李四")
    await expect(booked.locator(".reg-state")).to_have_text("confirmed")
    session_row = staff.locator("[data-session]", has_text="Dr Web")
    await session_row.get_by_label("Reason (sent to patients)").fill("Dr Web is ill")
    await session_row.get_by_role("button", name="Cancel session").click()
    await expect(staff.locator("#staff-msg")).to_contain_text("Session cancelled; 1 patient(s)")
    await staff.screenshot(path=str(artifact("provider-hospital-day.png")), full_page=True)
    await staff.close()

    await page.reload()
    await expect(page.locator("#reg-state")).to_have_text("Cancelled")

    # The inbox has the story, newest first; reading it clears the unread count.
    await page.get_by_role("link", name=re.compile("^Inbox")).click()
    notes = page.locator("#inbox-list [data-note]")
    await expect(notes.first).to_contain_text(re.compile("cancelled", re.IGNORECASE))
    await expect(page.locator("#inbox-list")).to_contain_text("Confirmed")
    await page.get_by_role("button", name="Mark all as read").click()
    await expect(page.locator("#unread")).to_have_text("0 unread")
    assert len(code) == 8
