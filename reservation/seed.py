"""Demo data for a first start: a hospital and a vaccination site with a week of slots.

Seeding goes through the same publish workflow as staff do, so the demo exercises the
real path (Postgres first, then the live inventory).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reservation.auth import new_api_key
from reservation.domain.clock import CHINA, from_ms
from reservation.domain.slots import SlotDraft
from reservation.services import Services
from reservation.store import accounts as account_store
from reservation.store import catalog
from reservation.workflows.publish_slots import ResourceInput, publish

HOSPITAL = ("pumch", "北京协和医院 Peking Union Medical College Hospital", "hospital")
VACCINE_SITE = ("bj-dongcheng-cdc", "东城区疾控中心 Dongcheng District CDC", "vaccination")

DOCTORS = [
    ResourceInput(
        "cardiology-li",
        "李主任 Dr Li (Cardiology, chief physician)",
        "doctor",
        {"department": "Cardiology", "title": "Chief physician", "fee_cny": 100},
    ),
    ResourceInput(
        "cardiology-wang",
        "王医生 Dr Wang (Cardiology)",
        "doctor",
        {"department": "Cardiology", "title": "Attending physician", "fee_cny": 50},
    ),
    ResourceInput(
        "pediatrics-zhao",
        "赵医生 Dr Zhao (Pediatrics)",
        "doctor",
        {"department": "Pediatrics", "title": "Associate chief", "fee_cny": 80},
    ),
]
VACCINE_LINES = [
    ResourceInput("flu-line", "Influenza vaccine", "vaccination", {"product": "influenza"}),
]


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    hospital_staff_key: str
    vaccine_staff_key: str


def _week_of_slots(
    codes: list[str], today: dt.date, *, days: int, capacity: int, release_at: dt.datetime
) -> list[SlotDraft]:
    drafts: list[SlotDraft] = []
    for offset in range(1, days + 1):
        day = today + dt.timedelta(days=offset)
        for code in codes:
            for hour, minute in [(8, 0), (8, 30), (9, 0), (9, 30), (14, 0), (14, 30)]:
                start = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHINA)
                drafts.append(
                    SlotDraft(
                        row=len(drafts),
                        resource_code=code,
                        starts_at=start,
                        ends_at=start + dt.timedelta(minutes=30),
                        capacity=capacity,
                        release_at=release_at,
                    )
                )
    return drafts


async def seed_demo(services: Services) -> DemoCredentials | None:
    """Seed once: returns the demo credentials, or None if data already exists."""
    async with services.pool.acquire() as conn:
        if await catalog.list_providers(conn):
            return None
        for provider_id, name, kind in (HOSPITAL, VACCINE_SITE):
            await catalog.upsert_provider(conn, provider_id, name, kind)
        creds = DemoCredentials(new_api_key(), new_api_key())
        await account_store.create_api_key(
            conn,
            api_key=creds.hospital_staff_key,
            role="staff",
            provider_id=HOSPITAL[0],
            label="demo",
        )
        await account_store.create_api_key(
            conn,
            api_key=creds.vaccine_staff_key,
            role="staff",
            provider_id=VACCINE_SITE[0],
            label="demo",
        )
    now = from_ms(services.clock())
    today = now.astimezone(CHINA).date()
    await publish(
        services,
        HOSPITAL[0],
        DOCTORS,
        _week_of_slots([d.code for d in DOCTORS], today, days=7, capacity=5, release_at=now),
    )
    await publish(
        services,
        VACCINE_SITE[0],
        VACCINE_LINES,
        _week_of_slots([v.code for v in VACCINE_LINES], today, days=7, capacity=20, release_at=now),
    )
    # --- vaccination (issue 6): ~1,800 Guangdong sites and their sessions
    from reservation.vaccine_seed import seed_vaccine

    await seed_vaccine(services)
    # --- hospital (issue 6): Beijing hospitals, departments, doctors, a week of schedules
    from reservation.hospital_seed import seed_hospitals

    await seed_hospitals(services)
    return creds
