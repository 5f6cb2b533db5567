"""Hospital standby as a waitlist (issue 5): a department or one doctor over a day range,
until a deadline; places freed by EXPIRED unpaid holds go to standby before open sale
(through the waitlist's cooling and the filler), under the hospital's own rules."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from reservation.workers.sweeper import Sweeper
from tests.api_fixture import Api
from tests.hospital.support import (
    book,
    book_and_pay,
    citizen,
    department_id,
    doctor_id,
    my_registrations,
    notifications_of,
    publish,
    row,
    slots_of,
    today,
)
from tests.waitlist.support import fill


async def join(api: Api, who: dict[str, Any], body: dict[str, Any], status: int = 201) -> Any:
    resp = await api.client.post("/v1/hospital/standby", json=body, headers=who["headers"])
    assert resp.status == status, await resp.text()
    return await resp.json()


async def entries(api: Api, who: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await api.client.get("/v1/hospital/standby", headers=who["headers"])
    assert resp.status == 200
    found: list[dict[str, Any]] = (await resp.json())["standby"]
    return found


async def expire_holds(api: Api) -> int:
    api.clock.now_ms += (api.services.settings.slot_hold_seconds + 1) * 1000
    return await Sweeper(api.services, list(range(api.services.settings.shard_count))).run_once()


async def test_a_place_freed_by_an_expired_hold_goes_to_standby_not_open_sale(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=1, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    dep = await department_id(api, "cardio")
    idler, waiter, stranger = [await citizen(api) for _ in range(3)]
    status, _ = await book(api, idler["headers"], slot["id"])  # held, never paid
    assert status == 201
    joined = await join(
        api,
        waiter,
        {
            "department_id": dep,
            "day": day.isoformat(),
            "last_day": (day + dt.timedelta(days=3)).isoformat(),
        },
    )
    assert joined["position"] == 1

    assert await expire_holds(api) == 1
    # the expired place is kept off open sale while somebody waits on standby
    assert (await slots_of(api, "dr-li", day))[0]["available"] == 0
    status, body = await book(api, stranger["headers"], slot["id"])
    assert (status, body["code"]) == (409, "sold_out")

    report = await fill(api)
    assert report.fulfilled == 1
    [reg] = await my_registrations(api, waiter["headers"])
    assert (reg["state"], reg["origin"], reg["slot_id"]) == ("held", "standby", slot["id"])
    assert [n["kind"] for n in await notifications_of(api, waiter["account_id"])] == [
        "standby_fulfilled"
    ]
    [entry] = await entries(api, waiter)
    assert (entry["status"], entry["registration_id"]) == ("fulfilled", reg["id"])
    resp = await api.client.post(
        f"/v1/hospital/registrations/{reg['id']}/confirm", headers=waiter["headers"]
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["verification_code"]
    async with api.services.pool.acquire() as conn:
        kinds = await conn.fetch(
            "SELECT kind, subject FROM audit_log WHERE subject LIKE 'standby:%'"
        )
    assert [k["kind"] for k in kinds] == ["allocation"]


async def test_a_doctor_range_waits_only_for_that_doctor_and_its_days(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    # The range is [day, day + 2]; `far` is outside it and, at today + 5, on sale at any
    # hour (today + 7, as this test used, opens only at 07:00 China time).
    far = day + dt.timedelta(days=3)
    rows = [
        row(day=d, doctor=doc, start="08:00", end="08:30", capacity=1, counter=0)
        for d in (day, day + dt.timedelta(days=1), far)
        for doc in ("dr-li", "dr-wang")
    ]
    await publish(api, rows)
    dep = await department_id(api, "cardio")
    li = await doctor_id(api, "dr-li")
    holders = [await citizen(api) for _ in range(3)]
    wang_day = (await slots_of(api, "dr-wang", day))[0]
    li_far = (await slots_of(api, "dr-li", far))[0]
    li_next = (await slots_of(api, "dr-li", day + dt.timedelta(days=1)))[0]
    regs = [
        await book_and_pay(api, h["headers"], s["id"])
        for h, s in zip(holders, (wang_day, li_far, li_next), strict=True)
    ]
    waiter = await citizen(api)
    body = {
        "department_id": dep,
        "doctor_id": li,
        "day": day.isoformat(),
        "last_day": (day + dt.timedelta(days=2)).isoformat(),
    }
    joined = await join(api, waiter, body)
    again = await join(api, waiter, body, 200)
    assert (again["id"], again["created"]) == (joined["id"], False)

    for holder, reg in zip(holders, regs, strict=True):
        resp = await api.client.post(
            f"/v1/hospital/registrations/{reg['id']}/cancel", headers=holder["headers"]
        )
        assert resp.status == 200, await resp.text()
    await fill(api)
    # dr-wang's place and dr-li's place outside the range were not for this patient
    [got] = await my_registrations(api, waiter["headers"])
    assert got["slot_id"] == li_next["id"]


async def test_rules_at_fulfilment_skip_a_patient_already_in_the_department(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(
        api,
        [
            row(day=day, doctor="dr-li", start="08:00", end="08:30", capacity=1, counter=0),
            row(day=day, doctor="dr-wang", start="08:00", end="08:30", capacity=1, counter=0),
        ],
    )
    dep = await department_id(api, "cardio")
    idler, busy, free = [await citizen(api) for _ in range(3)]
    li = (await slots_of(api, "dr-li", day))[0]
    wang = (await slots_of(api, "dr-wang", day))[0]
    status, _ = await book(api, idler["headers"], li["id"])
    assert status == 201
    body = {"department_id": dep, "day": day.isoformat()}
    await join(api, busy, body)
    await join(api, free, body)
    await book_and_pay(api, busy["headers"], wang["id"])  # a cardiology place that day
    await expire_holds(api)
    await fill(api)
    assert [r["origin"] for r in await my_registrations(api, free["headers"])] == ["standby"]
    assert [e["status"] for e in await entries(api, busy)] == ["waiting"]


async def test_the_deadline_ends_standby_and_the_place_returns_to_open_sale(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=1, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    dep = await department_id(api, "cardio")
    idler, waiter, later = [await citizen(api) for _ in range(3)]
    assert (await book(api, idler["headers"], slot["id"]))[0] == 201
    until = api.clock.now + dt.timedelta(seconds=60)
    await join(
        api, waiter, {"department_id": dep, "day": day.isoformat(), "deadline": until.isoformat()}
    )
    api.clock.now_ms += 61_000
    report = await fill(api)
    assert report.ended == 1
    [entry] = await entries(api, waiter)
    assert (entry["status"], entry["position"]) == ("ended", None)
    assert [n["kind"] for n in await notifications_of(api, waiter["account_id"])] == [
        "waitlist_ended"
    ]
    await expire_holds(api)
    await fill(api)
    assert (await slots_of(api, "dr-li", day))[0]["available"] == 1
    assert (await book(api, later["headers"], slot["id"]))[0] == 201
    assert await my_registrations(api, waiter["headers"]) == []


async def test_cancel_leaves_the_line_and_bad_requests_are_refused(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=1, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    dep = await department_id(api, "cardio")
    idler, first, second = [await citizen(api) for _ in range(3)]
    assert (await book(api, idler["headers"], slot["id"]))[0] == 201
    body = {"department_id": dep, "day": day.isoformat()}
    one = await join(api, first, body)
    assert (await join(api, second, body))["position"] == 2
    resp = await api.client.post(
        f"/v1/hospital/standby/{one['id']}/cancel", headers=first["headers"]
    )
    assert resp.status == 200
    assert [e["position"] for e in await entries(api, second)] == [1]
    await expire_holds(api)
    await fill(api)
    assert await my_registrations(api, first["headers"]) == []
    assert [r["origin"] for r in await my_registrations(api, second["headers"])] == ["standby"]

    too_long = {**body, "last_day": (day + dt.timedelta(days=7)).isoformat()}
    assert (await join(api, first, too_long, 422))["code"] == "bad_standby"
    late = {**body, "deadline": (api.clock.now + dt.timedelta(days=30)).isoformat()}
    assert (await join(api, first, late, 422))["code"] == "bad_standby"
    other = await doctor_id(api, "dr-li")
    assert await join(api, first, {**body, "department_id": "nope", "doctor_id": other}, 404)


async def test_expired_places_racing_open_sale_go_exactly_to_standby(api: Api) -> None:
    """3 places expire while 5 patients wait and 10 strangers hammer the slot: the
    strangers get nothing, exactly 3 patients (the first three in line) get a place."""
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=3, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    dep = await department_id(api, "cardio")
    for _ in range(3):
        assert (await book(api, (await citizen(api))["headers"], slot["id"]))[0] == 201
    waiters = [await citizen(api) for _ in range(5)]
    for w in waiters:
        await join(api, w, {"department_id": dep, "day": day.isoformat()})
    strangers = [await citizen(api) for _ in range(10)]
    assert await expire_holds(api) == 3
    results = await asyncio.gather(
        fill(api), *(book(api, s["headers"], slot["id"]) for s in strangers)
    )
    assert [status for status, _ in results[1:]] == [409] * 10
    await fill(api)
    got = [len(await my_registrations(api, w["headers"])) for w in waiters]
    assert got == [1, 1, 1, 0, 0]
    assert (await slots_of(api, "dr-li", day))[0]["available"] == 0
