"""Staff run the day: check-in by code, no-shows and their penalty, appeals, cancelling a
session with held alternatives."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from reservation.domain.clock import CHINA, to_ms
from tests.api_fixture import Api
from tests.hospital.support import (
    HOSPITAL,
    book,
    book_and_pay,
    citizen,
    my_registrations,
    notifications_of,
    publish,
    row,
    slots_of,
    today,
)


def staff_url(path: str) -> str:
    return f"/v1/hospital/providers/{HOSPITAL}{path}"


async def test_check_in_by_verification_code(api: Api) -> None:
    day = today(api) + dt.timedelta(days=1)
    await publish(api, [row(day=day)])
    who = await citizen(api)
    reg = await book_and_pay(api, who["headers"], (await slots_of(api, "dr-li", day))[0]["id"])
    api.clock.now_ms = to_ms(dt.datetime.combine(day, dt.time(7, 45), tzinfo=CHINA))
    code = reg["verification_code"]
    h = api.staff_headers(HOSPITAL)
    resp = await api.client.post(staff_url("/check-ins"), json={"code": "WRONG123"}, headers=h)
    assert resp.status == 404
    lowered = f"{code[:4].lower()}-{code[4:]}"  # forgiving of case and dashes
    resp = await api.client.post(staff_url("/check-ins"), json={"code": lowered}, headers=h)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["replay"] is False
    resp = await api.client.get(staff_url(f"/registrations?day={day.isoformat()}"), headers=h)
    (listed,) = (await resp.json())["registrations"]
    assert (listed["state"], listed["patient"]) == ("checked_in", "张三")
    # a checked-in patient cannot be marked a no-show
    api.clock.advance(3600)
    resp = await api.client.post(staff_url(f"/registrations/{reg['id']}/no-show"), headers=h)
    assert resp.status == 409


async def mark_no_show_at(api: Api, who: dict[str, Any], day: dt.date, doctor: str) -> str:
    await publish(api, [row(day=day, doctor=doctor)])
    api.clock.now_ms = to_ms(
        dt.datetime.combine(day - dt.timedelta(days=2), dt.time(9), tzinfo=CHINA)
    )
    reg = await book_and_pay(api, who["headers"], (await slots_of(api, doctor, day))[0]["id"])
    api.clock.now_ms = to_ms(dt.datetime.combine(day, dt.time(10), tzinfo=CHINA))
    resp = await api.client.post(
        staff_url(f"/registrations/{reg['id']}/no-show"), headers=api.staff_headers(HOSPITAL)
    )
    assert resp.status == 200, await resp.text()
    return str(reg["id"])


async def test_three_no_shows_suspend_booking_until_an_appeal_is_upheld(api: Api) -> None:
    who = await citizen(api)
    start = today(api) + dt.timedelta(days=3)
    ids = [
        await mark_no_show_at(api, who, start + dt.timedelta(days=10 * i), f"dr-{i}")
        for i in range(3)
    ]
    resp = await api.client.get("/v1/hospital/standing", headers=who["headers"])
    standing = await resp.json()
    assert standing["counted_no_shows"] == 3 and standing["suspended"] is True
    last = dt.datetime.combine(start + dt.timedelta(days=20), dt.time(10), tzinfo=CHINA)
    assert standing["suspended_until"] == (last + dt.timedelta(days=30)).isoformat()

    day = start + dt.timedelta(days=22)
    await publish(api, [row(day=day, doctor="dr-next")])
    status, body = await book(api, who["headers"], (await slots_of(api, "dr-next", day))[0]["id"])
    assert (status, body["code"]) == (409, "booking_suspended")

    resp = await api.client.post(
        f"/v1/hospital/no-shows/{ids[1]}/appeal",
        json={"reason": "I was in hospital elsewhere"},
        headers=who["headers"],
    )
    assert resp.status == 201
    stranger = await citizen(api)
    resp = await api.client.post(
        f"/v1/hospital/no-shows/{ids[0]}/appeal", json={"reason": "x"}, headers=stranger["headers"]
    )
    assert resp.status == 404
    resp = await api.client.get("/v1/hospital/appeals", headers=api.operator)
    assert [a["registration_id"] for a in (await resp.json())["appeals"]] == [ids[1]]
    resp = await api.client.post(
        f"/v1/hospital/appeals/{ids[1]}/resolve",
        json={"upheld": True, "note": "certificate seen"},
        headers=api.staff_headers(HOSPITAL),
    )
    assert resp.status == 403  # staff may not resolve appeals
    resp = await api.client.post(
        f"/v1/hospital/appeals/{ids[1]}/resolve",
        json={"upheld": True, "note": "certificate seen"},
        headers=api.operator,
    )
    assert resp.status == 200
    resp = await api.client.get("/v1/hospital/standing", headers=who["headers"])
    standing = await resp.json()
    assert (standing["counted_no_shows"], standing["suspended"]) == (2, False)
    assert [n["appeal_status"] for n in standing["no_shows"]] == ["none", "upheld", "none"]
    status, _ = await book(api, who["headers"], (await slots_of(api, "dr-next", day))[0]["id"])
    assert status == 201
    async with api.services.pool.acquire() as conn:
        actions = [
            r["a"]
            for r in await conn.fetch(
                "SELECT payload->>'action' AS a FROM audit_log WHERE kind = 'staff_action'"
                " ORDER BY seq"
            )
        ]
    assert actions == ["no_show", "no_show", "no_show", "resolve_appeal"]


async def test_no_show_only_once_the_time_has_begun(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day)])
    who = await citizen(api)
    reg = await book_and_pay(api, who["headers"], (await slots_of(api, "dr-li", day))[0]["id"])
    resp = await api.client.post(
        staff_url(f"/registrations/{reg['id']}/no-show"), headers=api.staff_headers(HOSPITAL)
    )
    assert (resp.status, (await resp.json())["code"]) == (409, "not_allowed_now")
    resp = await api.client.post(
        f"/v1/hospital/providers/hosp-b/registrations/{reg['id']}/no-show",
        headers=api.staff_headers("hosp-b"),
    )
    assert resp.status == 404  # another hospital's staff do not see it


async def test_cancelling_a_session_notifies_everyone_and_holds_alternatives(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    sessions = await publish(
        api,
        [
            row(day=day, doctor="dr-li", capacity=2, counter=0),
            row(day=day + dt.timedelta(days=1), doctor="dr-wang", capacity=1, counter=0),
        ],
    )
    li = await slots_of(api, "dr-li", day)
    patients = [await citizen(api) for _ in range(3)]
    regs = [
        await book_and_pay(api, patients[0]["headers"], li[0]["id"]),
        await book_and_pay(api, patients[1]["headers"], li[0]["id"]),
    ]
    status, held = await book(api, patients[2]["headers"], li[1]["id"])  # unpaid hold
    assert status == 201

    resp = await api.client.post(
        staff_url(f"/sessions/{sessions[0]['id']}/cancel"),
        json={"reason": "Dr Li is ill"},
        headers=api.staff_headers(HOSPITAL),
    )
    assert resp.status == 200, await resp.text()
    affected = (await resp.json())["affected"]
    assert sorted(a["registration_id"] for a in affected) == sorted(
        [regs[0]["id"], regs[1]["id"], held["id"]]
    )
    # dr-wang's next-day window has 2 windows x 1 place: the first two patients get them
    offers = [a["offer"] for a in affected]
    assert sum(o is not None for o in offers) == 2
    for patient in patients:
        kinds = [n["kind"] for n in await notifications_of(api, patient["account_id"])]
        assert kinds[-1] == "session_cancelled"
    first = await my_registrations(api, patients[0]["headers"])
    by_origin = {r["origin"]: r for r in first}
    assert by_origin["citizen"]["state"] == "cancelled"
    assert by_origin["offer"]["state"] == "held"
    assert by_origin["offer"]["offered_for"] == regs[0]["id"]
    note = (await notifications_of(api, patients[0]["account_id"]))[-1]
    assert json.loads(note["payload"])["offer"]["registration_id"] == by_origin["offer"]["id"]
    # the offer is confirmed like any hold
    resp = await api.client.post(
        f"/v1/hospital/registrations/{by_origin['offer']['id']}/confirm",
        headers=patients[0]["headers"],
    )
    assert resp.status == 200
    # the cancelled session takes no more bookings, and repeating the cancel is harmless
    late = await citizen(api)
    status, body = await book(api, late["headers"], li[1]["id"])
    assert (status, body["code"]) == (409, "session_cancelled")
    resp = await api.client.post(
        staff_url(f"/sessions/{sessions[0]['id']}/cancel"),
        json={"reason": "Dr Li is ill"},
        headers=api.staff_headers(HOSPITAL),
    )
    assert (resp.status, (await resp.json())["affected"]) == (200, [])
