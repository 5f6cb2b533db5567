"""The race for the last expert place at 07:00, and standby backfill."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from reservation.domain.clock import CHINA, to_ms
from reservation.workflows import hospital_standby
from tests.api_fixture import Api
from tests.helpers import insert_citizens
from tests.hospital.support import (
    HOSPITAL,
    book,
    book_and_pay,
    citizen,
    department_id,
    my_registrations,
    notifications_of,
    publish,
    row,
    slots_of,
    today,
)
from tests.waitlist.support import fill, persist


async def test_many_patients_race_for_the_last_expert_place_exactly_one_wins(api: Api) -> None:
    day = today(api) + dt.timedelta(days=9)  # opens at 07:00 in two days
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=1, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    api.clock.now_ms = to_ms(
        dt.datetime.combine(day - dt.timedelta(days=7), dt.time(7, 0), tzinfo=CHINA)
    )
    people = await insert_citizens(api, 30, "race")
    results = await asyncio.gather(*(book(api, headers, slot["id"]) for _, headers in people))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 29
    assert {body["code"] for status, body in results if status == 409} == {"sold_out"}
    assert (await slots_of(api, "dr-li", day))[0]["available"] == 0
    # a refused hold left nothing behind in the losers' day: another cardiologist is fine
    await publish(api, [row(day=day, doctor="dr-wang", start="09:00", end="09:30")])
    loser = next(h for (_, h), (status, _) in zip(people, results, strict=True) if status == 409)
    status, body = await book(api, loser, (await slots_of(api, "dr-wang", day))[0]["id"])
    assert status == 201, body


async def standby(api: Api, headers: dict[str, str], dep: str, day: dt.date) -> dict[str, Any]:
    resp = await api.client.post(
        "/v1/hospital/standby", json={"department_id": dep, "day": day.isoformat()}, headers=headers
    )
    assert resp.status in (200, 201), await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_cancelled_place_goes_to_standby_in_order_never_to_open_sale(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=1, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    dep = await department_id(api, "cardio")
    winner, first, second, stranger = [await citizen(api) for _ in range(4)]
    reg = await book_and_pay(api, winner["headers"], slot["id"])
    status, body = await book(api, first["headers"], slot["id"])
    assert (status, body["code"]) == (409, "sold_out")

    assert (await standby(api, first["headers"], dep, day))["position"] == 1
    assert (await standby(api, second["headers"], dep, day))["position"] == 2
    again = await standby(api, first["headers"], dep, day)
    assert (again["created"], again["position"]) == (False, 1)

    resp = await api.client.post(
        f"/v1/hospital/registrations/{reg['id']}/cancel", headers=winner["headers"]
    )
    assert resp.status == 200, await resp.text()
    # the place never reached open sale: it is held for the first standby patient
    assert (await slots_of(api, "dr-li", day))[0]["available"] == 0
    status, body = await book(api, stranger["headers"], slot["id"])
    assert (status, body["code"]) == (409, "sold_out")
    offered = await my_registrations(api, first["headers"])
    assert [(r["state"], r["origin"]) for r in offered] == [("held", "standby")]
    kinds = [n["kind"] for n in await notifications_of(api, first["account_id"])]
    assert kinds == ["standby_fulfilled"]
    # the second patient moves up
    resp = await api.client.get("/v1/hospital/standby", headers=second["headers"])
    assert [(s["status"], s["position"]) for s in (await resp.json())["standby"]] == [
        ("waiting", 1)
    ]
    resp = await api.client.get("/v1/hospital/standby", headers=first["headers"])
    entries = (await resp.json())["standby"]
    assert [(s["status"], s["registration_id"]) for s in entries] == [
        ("fulfilled", offered[0]["id"])
    ]
    resp = await api.client.post(
        f"/v1/hospital/registrations/{offered[0]['id']}/confirm", headers=first["headers"]
    )
    assert resp.status == 200
    assert (await resp.json())["state"] == "confirmed"


async def test_standby_skips_a_patient_already_registered_in_the_department(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(
        api,
        [
            row(day=day, doctor="dr-li", start="08:00", end="08:30", capacity=1, counter=0),
            row(day=day, doctor="dr-wang", start="08:00", end="08:30", capacity=1, counter=0),
        ],
    )
    dep = await department_id(api, "cardio")
    holder, busy, free = [await citizen(api) for _ in range(3)]
    li = (await slots_of(api, "dr-li", day))[0]
    wang = (await slots_of(api, "dr-wang", day))[0]
    reg = await book_and_pay(api, holder["headers"], li["id"])
    await standby(api, busy["headers"], dep, day)
    await standby(api, free["headers"], dep, day)
    await book_and_pay(api, busy["headers"], wang["id"])  # busy got a place elsewhere meanwhile
    resp = await api.client.post(
        f"/v1/hospital/registrations/{reg['id']}/cancel", headers=holder["headers"]
    )
    assert resp.status == 200
    assert [r["origin"] for r in await my_registrations(api, free["headers"])] == ["standby"]


async def test_without_standby_a_cancelled_place_returns_to_open_sale(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=1, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    who, later = await citizen(api), await citizen(api)
    reg = await book_and_pay(api, who["headers"], slot["id"])
    resp = await api.client.post(
        f"/v1/hospital/registrations/{reg['id']}/cancel", headers=who["headers"]
    )
    assert resp.status == 200
    assert (await slots_of(api, "dr-li", day))[0]["available"] == 1
    status, _ = await book(api, later["headers"], slot["id"])
    assert status == 201


async def test_a_no_show_during_the_window_frees_the_place_for_standby(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="09:00", capacity=1, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    dep = await department_id(api, "cardio")
    absent, waiting = await citizen(api), await citizen(api)
    reg = await book_and_pay(api, absent["headers"], slot["id"])
    await standby(api, waiting["headers"], dep, day)
    api.clock.now_ms = to_ms(dt.datetime.combine(day, dt.time(8, 5), tzinfo=CHINA))
    resp = await api.client.post(
        f"/v1/hospital/providers/{HOSPITAL}/registrations/{reg['id']}/no-show",
        headers=api.staff_headers(HOSPITAL),
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["place_offered_to_standby"] is True
    offered = await my_registrations(api, waiting["headers"])
    assert [(r["state"], r["origin"]) for r in offered] == [("held", "standby")]
    # held until the window ends at the latest
    assert offered[0]["hold_deadline"] == slot["ends_at"]


async def test_leaving_standby_moves_the_others_up(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day)])
    dep = await department_id(api, "cardio")
    first, second = await citizen(api), await citizen(api)
    joined = await standby(api, first["headers"], dep, day)
    assert (await standby(api, second["headers"], dep, day))["position"] == 2
    resp = await api.client.post(
        f"/v1/hospital/standby/{joined['id']}/cancel", headers=second["headers"]
    )
    assert resp.status == 404  # not theirs
    resp = await api.client.post(
        f"/v1/hospital/standby/{joined['id']}/cancel", headers=first["headers"]
    )
    assert resp.status == 200
    resp = await api.client.get("/v1/hospital/standby", headers=second["headers"])
    assert [s["position"] for s in (await resp.json())["standby"]] == [1]
    resp = await api.client.post(
        "/v1/hospital/standby",
        json={"department_id": dep, "day": (today(api) - dt.timedelta(days=1)).isoformat()},
        headers=first["headers"],
    )
    assert resp.status == 409


async def test_a_standby_place_given_before_a_crash_is_recorded_by_the_next_pass(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handover (Redis) happened, the transaction recording it did not: the cancel's
    retry completes the cancel, and the filler's next pass gives the standby patient the
    registration, the notification and the fulfilled entry the crash lost."""
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="08:30", capacity=1, counter=0)])
    slot = (await slots_of(api, "dr-li", day))[0]
    dep = await department_id(api, "cardio")
    winner, first, second = [await citizen(api) for _ in range(3)]
    reg = await book_and_pay(api, winner["headers"], slot["id"])
    assert (await standby(api, first["headers"], dep, day))["position"] == 1
    assert (await standby(api, second["headers"], dep, day))["position"] == 2

    async def crash(*args: object, **kwargs: object) -> None:
        raise ConnectionResetError("the process died here")

    monkeypatch.setattr(hospital_standby, "_record", crash)
    cancel = f"/v1/hospital/registrations/{reg['id']}/cancel"
    resp = await api.client.post(cancel, headers=winner["headers"])
    assert resp.status == 503
    monkeypatch.undo()
    assert await my_registrations(api, first["headers"]) == []  # not told, nothing recorded

    resp = await api.client.post(cancel, headers=winner["headers"])
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "cancelled"
    await persist(api)
    await fill(api)
    offered = await my_registrations(api, first["headers"])
    assert [(r["state"], r["origin"], r["slot_id"]) for r in offered] == [
        ("held", "standby", slot["id"])
    ]
    kinds = [n["kind"] for n in await notifications_of(api, first["account_id"])]
    assert kinds.count("standby_fulfilled") == 1  # (and the persister's usual `held` note)
    resp = await api.client.get("/v1/hospital/standby", headers=first["headers"])
    assert [(s["status"], s["registration_id"]) for s in (await resp.json())["standby"]] == [
        ("fulfilled", offered[0]["id"])
    ]
    # One place, given once: still nothing on open sale, the second patient still waits.
    assert (await slots_of(api, "dr-li", day))[0]["available"] == 0
    resp = await api.client.get("/v1/hospital/standby", headers=second["headers"])
    assert [(s["status"], s["position"]) for s in (await resp.json())["standby"]] == [
        ("waiting", 1)
    ]
    await fill(api)  # again: nothing more to settle
    assert len(await my_registrations(api, first["headers"])) == 1
