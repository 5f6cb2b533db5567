"""Registration rules over HTTP: department and daily limits, channel pools, cancellation
deadline, reminders, walk-ins through the same workflow."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from reservation.domain.clock import CHINA, to_ms
from tests.api_fixture import Api
from tests.helpers import make_id_number, make_phone
from tests.hospital.support import (
    HOSPITAL,
    book,
    book_and_pay,
    citizen,
    my_registrations,
    publish,
    row,
    slots_of,
    today,
)


async def test_one_registration_per_department_per_day(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, doctor="dr-li"), row(day=day, doctor="dr-wang")])
    who = await citizen(api)
    li, wang = (await slots_of(api, "dr-li", day))[0], (await slots_of(api, "dr-wang", day))[0]
    status, _ = await book(api, who["headers"], li["id"])
    assert status == 201
    # another doctor of the same department, same day: refused, across shards
    status, body = await book(api, who["headers"], wang["id"])
    assert (status, body["code"]) == (409, "department_limit")
    # the next day is another day
    later = day + dt.timedelta(days=1)
    await publish(api, [row(day=later, doctor="dr-wang")])
    status, _ = await book(api, who["headers"], (await slots_of(api, "dr-wang", later))[0]["id"])
    assert status == 201


async def test_at_most_three_departments_per_day(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    deps = ["cardio", "derma", "ortho", "neuro"]
    await publish(api, [row(day=day, doctor=f"dr-{d}", department=d) for d in deps])
    who = await citizen(api)
    outcomes = []
    for d in deps:
        status, body = await book_and_pay_or_refusal(api, who["headers"], f"dr-{d}", day)
        outcomes.append(body.get("code", status))
    assert outcomes == [200, 200, 200, "daily_department_limit"]
    # cancelling one frees a department for the day
    first = (await my_registrations(api, who["headers"]))[-1]
    resp = await api.client.post(
        f"/v1/hospital/registrations/{first['id']}/cancel", headers=who["headers"]
    )
    assert resp.status == 200
    status, _ = await book(api, who["headers"], (await slots_of(api, "dr-neuro", day))[0]["id"])
    assert status == 201


async def book_and_pay_or_refusal(
    api: Api, headers: dict[str, str], doctor: str, day: dt.date
) -> tuple[int, dict[str, Any]]:
    status, body = await book(api, headers, (await slots_of(api, doctor, day))[0]["id"])
    if status != 201:
        return status, body
    resp = await api.client.post(
        f"/v1/hospital/registrations/{body['id']}/confirm", headers=headers
    )
    return resp.status, await resp.json()


async def test_an_expired_hold_stops_counting_for_the_department(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, doctor="dr-li"), row(day=day, doctor="dr-wang")])
    who = await citizen(api)
    status, _ = await book(api, who["headers"], (await slots_of(api, "dr-li", day))[0]["id"])
    assert status == 201
    api.clock.advance(api.services.settings.slot_hold_seconds + 1)
    status, body = await book(api, who["headers"], (await slots_of(api, "dr-wang", day))[0]["id"])
    assert status == 201, body


async def test_the_counter_share_is_kept_from_the_app(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, capacity=2, counter=1)])
    who = await citizen(api)
    counter = (await slots_of(api, "dr-li", day, channel="counter"))[0]
    status, body = await book(api, who["headers"], counter["id"])
    assert (status, body["code"]) == (409, "channel_reserved")


async def test_walk_in_uses_the_counter_share_and_the_same_limits(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, capacity=2, counter=1), row(day=day, doctor="dr-wang")])
    counter = (await slots_of(api, "dr-li", day, channel="counter"))[0]
    person = {"name": "王奶奶", "phone": make_phone(), "id_number": make_id_number()}
    resp = await api.client.post(
        f"/v1/hospital/providers/{HOSPITAL}/walk-ins",
        json={"slot_id": counter["id"], "channel": "onsite", **person},
        headers=api.staff_headers(HOSPITAL),
    )
    assert resp.status == 201, await resp.text()
    reg = await resp.json()
    assert (reg["state"], reg["channel"], reg["origin"]) == ("confirmed", "onsite", "walk_in")
    # the same patient, another doctor of the same department that day: the same rule
    wang = (await slots_of(api, "dr-wang", day))[0]
    resp = await api.client.post(
        f"/v1/hospital/providers/{HOSPITAL}/walk-ins",
        json={"slot_id": wang["id"], "channel": "phone", **person},
        headers=api.staff_headers(HOSPITAL),
    )
    assert (resp.status, (await resp.json())["code"]) == (409, "department_limit")
    async with api.services.pool.acquire() as conn:
        actions = await conn.fetch(
            "SELECT actor, payload->>'action' AS action FROM audit_log"
            " WHERE kind = 'staff_action' ORDER BY seq"
        )
    assert [(a["actor"], a["action"]) for a in actions] == [("staff:hosp-a", "book")]


async def test_free_cancellation_until_15_00_the_day_before_then_refused(api: Api) -> None:
    day = today(api) + dt.timedelta(days=3)
    await publish(api, [row(day=day)])
    who = await citizen(api)
    slot = (await slots_of(api, "dr-li", day))[0]
    reg = await book_and_pay(api, who["headers"], slot["id"])
    deadline = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(15, 0), tzinfo=CHINA)
    assert reg["cancel_deadline"] == deadline.isoformat()
    api.clock.now_ms = to_ms(deadline)
    resp = await api.client.post(
        f"/v1/hospital/registrations/{reg['id']}/cancel", headers=who["headers"]
    )
    assert (resp.status, (await resp.json())["code"]) == (409, "cancel_deadline_passed")
    # an unpaid hold can still be dropped after the deadline
    other = await citizen(api)
    status, held = await book(api, other["headers"], slot["id"])
    assert status == 201
    resp = await api.client.post(
        f"/v1/hospital/registrations/{held['id']}/cancel", headers=other["headers"]
    )
    assert resp.status == 200


async def test_confirm_schedules_a_reminder_and_cancel_withdraws_it(api: Api) -> None:
    day = today(api) + dt.timedelta(days=3)
    await publish(api, [row(day=day)])
    who = await citizen(api)
    reg = await book_and_pay(api, who["headers"], (await slots_of(api, "dr-li", day))[0]["id"])
    subject = f"booking:{reg['id']}"  # the generic booking's subject: one reminder only
    async with api.services.pool.acquire() as conn:
        remind_at = await conn.fetchval(
            "SELECT remind_at FROM reminders WHERE subject = $1 AND cancelled_at IS NULL", subject
        )
    # the notifier's lead (a day) before the appointment at 08:00
    assert remind_at == dt.datetime.combine(day - dt.timedelta(days=1), dt.time(8), tzinfo=CHINA)
    resp = await api.client.post(
        f"/v1/hospital/registrations/{reg['id']}/cancel", headers=who["headers"]
    )
    assert resp.status == 200
    async with api.services.pool.acquire() as conn:
        live = await conn.fetchval(
            "SELECT count(*) FROM reminders WHERE subject = $1 AND cancelled_at IS NULL", subject
        )
    assert live == 0


async def test_someone_elses_registration_is_not_found(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day)])
    owner, other = await citizen(api), await citizen(api)
    reg = await book_and_pay(api, owner["headers"], (await slots_of(api, "dr-li", day))[0]["id"])
    for action in ("cancel", "confirm"):
        resp = await api.client.post(
            f"/v1/hospital/registrations/{reg['id']}/{action}", headers=other["headers"]
        )
        assert resp.status == 404


async def test_slots_open_at_the_release_time(api: Api) -> None:
    # default policy: a day opens 7 days ahead at 07:00 (China time)
    now_local = api.clock.now.astimezone(CHINA)
    day = now_local.date() + dt.timedelta(days=9)
    await publish(api, [row(day=day)])
    slot = (await slots_of(api, "dr-li", day))[0]
    who = await citizen(api)
    status, body = await book(api, who["headers"], slot["id"])
    assert (status, body["code"]) == (409, "not_released")
    opens = dt.datetime.combine(day - dt.timedelta(days=7), dt.time(7, 0), tzinfo=CHINA)
    assert slot["release_at"] == opens.isoformat()
    api.clock.now_ms = to_ms(opens)
    status, _ = await book(api, who["headers"], slot["id"])
    assert status == 201


async def test_daily_limits_hold_even_if_redis_lost_the_day_gate(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, doctor="dr-li"), row(day=day, doctor="dr-wang")])
    who = await citizen(api)
    await book_and_pay(api, who["headers"], (await slots_of(api, "dr-li", day))[0]["id"])
    keys = await api.services.redis.keys(f"{api.services.keys.prefix}:*:hday:*")
    assert len(keys) == 1
    await api.services.redis.delete(*keys)  # as after a Redis loss and rebuild
    status, body = await book(api, who["headers"], (await slots_of(api, "dr-wang", day))[0]["id"])
    assert (status, body["code"]) == (409, "department_limit")


async def test_staff_may_book_a_caller_into_the_online_pool_once_the_counter_is_full(
    api: Api,
) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=2, counter=1)])
    counter = (await slots_of(api, "dr-li", day, channel="counter"))[0]
    online = (await slots_of(api, "dr-li", day))[0]
    outcomes = []
    for slot in (counter, counter, online):
        resp = await api.client.post(
            f"/v1/hospital/providers/{HOSPITAL}/walk-ins",
            json={
                "slot_id": slot["id"],
                "channel": "phone",
                "name": "赵大爷",
                "phone": make_phone(),
                "id_number": make_id_number(),
            },
            headers=api.staff_headers(HOSPITAL),
        )
        outcomes.append((resp.status, (await resp.json()).get("code")))
    assert outcomes == [(201, None), (409, "sold_out"), (201, None)]


async def test_unknown_slots_and_bad_bodies_are_clear_4xx(api: Api) -> None:
    who = await citizen(api)
    status, body = await book(api, who["headers"], "s1-0000000000000000")
    assert (status, body["code"]) == (404, "not_found")
    resp = await api.client.post(
        "/v1/hospital/registrations", json={"slot": "x"}, headers=who["headers"]
    )
    assert resp.status == 422
    resp = await api.client.post(
        f"/v1/hospital/providers/{HOSPITAL}/schedules.csv",
        data=b"\xff\xfe not utf-8",
        headers={**api.staff_headers(HOSPITAL), "Content-Type": "text/csv"},
    )
    assert resp.status == 422
    resp = await api.client.post(
        f"/v1/hospital/providers/{HOSPITAL}/schedules.csv",
        json={"rows": []},
        headers=api.staff_headers(HOSPITAL),
    )
    assert resp.status == 415


async def test_concurrent_bookings_in_one_department_only_one_is_held(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    doctors = [f"dr-{i}" for i in range(6)]
    await publish(api, [row(day=day, doctor=d) for d in doctors])
    who = await citizen(api)
    slots = [(await slots_of(api, d, day))[0]["id"] for d in doctors]
    results = await asyncio.gather(*(book(api, who["headers"], s) for s in slots))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 5
    assert {b["code"] for status, b in results if status == 409} == {"department_limit"}
    held = [r for r in await my_registrations(api, who["headers"]) if r["state"] == "held"]
    assert len(held) == 1
