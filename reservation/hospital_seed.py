"""Demo hospitals for `fairseat serve` (issue 6): a few Beijing hospitals with departments,
doctors and a week of schedules, published through the staff workflow (so the demo runs the
real path: every row checked, one transaction, audited, then on sale in Redis)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reservation.domain.clock import CHINA, from_ms
from reservation.services import Services
from reservation.store import catalog
from reservation.workflows.hospital_publish import publish_schedules


@dataclass(frozen=True, slots=True)
class Doctor:
    code: str
    name: str
    title: str
    specialty: str
    fee_cny: str
    sessions: tuple[str, ...]  # "morning" / "afternoon"
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)


CHIEF, ASSOCIATE, ATTENDING = "主任医师", "副主任医师", "主治医师"

# provider id, name, {(department code, department name): [doctors]}
HOSPITALS: list[tuple[str, str, dict[tuple[str, str], list[Doctor]]]] = [
    (
        "pumch",
        "北京协和医院 Peking Union Medical College Hospital",
        {
            ("cardiology", "心内科 Cardiology"): [
                Doctor("zhang-wei", "张伟", CHIEF, "冠心病介入", "100", ("morning",), (0, 2, 4)),
                Doctor("liu-fang", "刘芳", ASSOCIATE, "高血压", "60", ("morning", "afternoon")),
                Doctor("chen-jing", "陈静", ATTENDING, "心律失常", "50", ("afternoon",)),
            ],
            ("gastro", "消化内科 Gastroenterology"): [
                Doctor("wang-lei", "王磊", CHIEF, "炎症性肠病", "100", ("morning",), (1, 3)),
                Doctor("zhao-min", "赵敏", ATTENDING, "胃镜", "50", ("morning", "afternoon")),
            ],
            ("dermatology", "皮肤科 Dermatology"): [
                Doctor("sun-li", "孙丽", ASSOCIATE, "银屑病", "60", ("morning",)),
            ],
        },
    ),
    (
        "pkufh",
        "北京大学第一医院 Peking University First Hospital",
        {
            ("pediatrics", "儿科 Pediatrics"): [
                Doctor("li-na", "李娜", CHIEF, "小儿肾脏病", "100", ("morning",), (0, 3)),
                Doctor("zhou-tao", "周涛", ATTENDING, "儿童呼吸", "50", ("morning", "afternoon")),
            ],
            ("nephrology", "肾内科 Nephrology"): [
                Doctor("wu-gang", "吴刚", CHIEF, "IgA肾病", "100", ("afternoon",), (1, 4)),
                Doctor("xu-yan", "徐艳", ATTENDING, "透析", "50", ("morning",)),
            ],
        },
    ),
    (
        "bjtrh",
        "首都医科大学附属北京同仁医院 Beijing Tongren Hospital",
        {
            ("ophthalmology", "眼科 Ophthalmology"): [
                Doctor("ma-jun", "马军", CHIEF, "青光眼", "100", ("morning",), (0, 2)),
                Doctor("hu-xia", "胡霞", ATTENDING, "白内障", "50", ("morning", "afternoon")),
            ],
            ("ent", "耳鼻咽喉科 ENT"): [
                Doctor("guo-qiang", "郭强", ASSOCIATE, "鼻窦炎", "60", ("afternoon",)),
            ],
        },
    ),
]

TIMES = {"morning": ("08:00", "11:30"), "afternoon": ("13:30", "16:30")}


def schedule_rows(today: dt.date, days: int = 7) -> dict[str, list[dict[str, object]]]:
    """provider id -> schedule rows for the ``days`` days after ``today``."""
    out: dict[str, list[dict[str, object]]] = {}
    for provider_id, _, departments in HOSPITALS:
        rows: list[dict[str, object]] = []
        for (dep_code, dep_name), doctors in departments.items():
            for doctor in doctors:
                for offset in range(1, days + 1):
                    day = today + dt.timedelta(days=offset)
                    if day.weekday() not in doctor.weekdays:
                        continue
                    for period in doctor.sessions:
                        start, end = TIMES[period]
                        rows.append(
                            {
                                "department_code": dep_code,
                                "department_name": dep_name,
                                "doctor_code": doctor.code,
                                "doctor_name": doctor.name,
                                "title": doctor.title,
                                "specialty": doctor.specialty,
                                "fee_cny": doctor.fee_cny,
                                "day": day.isoformat(),
                                "session": period,
                                "start": start,
                                "end": end,
                                "slot_minutes": 30,
                                # experts see fewer patients per window
                                "capacity": 2 if doctor.title == CHIEF else 4,
                                "counter_capacity": 1,
                            }
                        )
        out[provider_id] = rows
    return out


async def seed_hospitals(services: Services) -> int:
    """Seed the demo hospitals (idempotent: republishing is recognised). Returns how many
    sessions were published."""
    today = from_ms(services.clock()).astimezone(CHINA).date()
    async with services.pool.acquire() as conn:
        for provider_id, name, _ in HOSPITALS:
            await catalog.upsert_provider(conn, provider_id, name, "hospital")
    total = 0
    for provider_id, rows in schedule_rows(today).items():
        published = await publish_schedules(
            services, provider_id, list(enumerate(rows)), actor="seed"
        )
        total += len(published)
    return total
