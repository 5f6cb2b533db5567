"""Booking vaccine doses over HTTP: a 2-dose series (both or neither), single doses in
dose order, confirm, cancel, records, notifications and reminders."""

from __future__ import annotations

from typing import Any

from tests.api_fixture import Api
from tests.vaccine.support import (
    Site,
    book,
    book_ok,
    booked_and_confirmed,
    citizen,
    confirm,
    make_site,
    publish,
    record,
    row,
    two_dose_slots,
)


async def available(api: Api, slot_ids: list[str]) -> list[int | None]:
    found = await api.services.slots.available(slot_ids)
    return [found[s] for s in slot_ids]


async def test_a_series_is_held_then_confirmed_as_a_whole(api: Api, site: Site) -> None:
    # Dose 1 the day after tomorrow: its day-before reminder is due in the future.
    first, second = await two_dose_slots(api, site, days_ahead=2)
    alice = await citizen(api)
    held = await book_ok(api, alice, [first, second], key="series-1")
    assert held["state"] == "held"
    assert held["deadline"] is not None
    assert [a["dose"] for a in held["appointments"]] == [1, 2]
    assert [a["slot_id"] for a in held["appointments"]] == [first, second]
    assert await available(api, [first, second]) == [9, 9]

    # A retry with the same key is the same booking, not a second one.
    again = await book(api, alice, [first, second], key="series-1")
    assert again.status == 200, await again.text()
    assert (await again.json())["id"] == held["id"]
    assert await available(api, [first, second]) == [9, 9]

    # The generic confirm refuses one dose of a series alone: both or neither.
    one = await api.client.post(
        f"/v1/bookings/{held['appointments'][0]['id']}/confirm", headers=alice["headers"]
    )
    assert one.status == 409, await one.text()

    resp = await confirm(api, alice, held["id"])
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["state"] == "confirmed"
    assert [a["state"] for a in done["appointments"]] == ["confirmed", "confirmed"]
    codes = [a["verification_code"] for a in done["appointments"]]
    assert all(c and len(c) == 9 for c in codes) and codes[0] != codes[1]
    # Committed before the answer: the booking rows and the appointments say confirmed.
    async with api.services.pool.acquire() as conn:
        states = await conn.fetch(
            "SELECT state FROM bookings WHERE id = ANY($1::text[])",
            [a["id"] for a in done["appointments"]],
        )
        kinds = await conn.fetch(
            "SELECT kind, subject FROM notifications WHERE account_id = $1 ORDER BY id",
            alice["account_id"],
        )
        reminders = await conn.fetch(
            "SELECT subject, remind_at FROM reminders WHERE account_id = $1 ORDER BY remind_at",
            alice["account_id"],
        )
    assert [r["state"] for r in states] == ["confirmed", "confirmed"]
    assert [k["kind"] for k in kinds] == ["held", "held", "confirmed", "confirmed"]
    assert [r["subject"] for r in reminders] == [f"booking:{a['id']}" for a in done["appointments"]]

    # The same key for other slots is refused, whatever shard they are in.
    elsewhere = await make_site(api, "vx-reuse", "荔湾区")  # almost surely another shard
    other_first, other_second = await two_dose_slots(api, elsewhere, gap=30, days_ahead=3)
    reused = await book(api, alice, [other_first, other_second], key="series-1")
    assert reused.status == 422
    assert (await reused.json())["code"] == "idempotency_key_reused"

    # Confirming again is a replay.
    resp = await confirm(api, alice, held["id"])
    assert resp.status == 200
    mine = await record(api, alice)
    product = (await mine.json())["products"][0]
    assert product["product"] == "covid-inact"
    assert product["given"] == [] and product["next_due"] == {
        "dose": 1,
        "from": None,
        "until": None,
    }
    assert [a["dose"] for a in product["appointments"]] == [1, 2]


async def test_dose_one_of_a_series_product_needs_dose_two(api: Api, site: Site) -> None:
    first, _ = await two_dose_slots(api, site)
    alice = await citizen(api)
    resp = await book(api, alice, [first])
    assert resp.status == 409
    body = await resp.json()
    assert body["code"] == "not_eligible"
    assert body["fields"]["reason"] == "series_required"
    assert await available(api, [first]) == [10]


async def test_dose_two_outside_the_interval_is_refused(api: Api, site: Site) -> None:
    for gap, ok in ((20, False), (21, True), (41, True), (42, True), (43, False)):
        first, second = await two_dose_slots(api, site, gap=gap)
        alice = await citizen(api)
        resp = await book(api, alice, [first, second])
        assert (resp.status == 201) is ok, (gap, await resp.text())
        if not ok:
            assert (await resp.json())["fields"]["reason"] == "dose_interval"


async def test_sold_out_dose_two_holds_neither(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site, capacity=5, dose2_capacity=1)
    alice, bob = await citizen(api), await citizen(api, "李四")
    await book_ok(api, alice, [first, second])
    resp = await book(api, bob, [first, second])
    assert resp.status == 409
    body = await resp.json()
    assert body["code"] == "sold_out"
    assert body["fields"]["dose"] == 2
    # Dose 1's place was not taken either.
    assert await available(api, [first, second]) == [4, 0]


async def test_age_band_and_wrong_product(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)  # born 1990
    resp = await book(api, alice, [first, second], campaign="covid-elderly")
    assert resp.status == 409
    assert (await resp.json())["fields"]["reason"] == "age_band"
    resp = await book(api, alice, [first, second], campaign="flu-season")
    assert resp.status == 422, await resp.text()


async def test_priority_campaign_needs_an_attested_group(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    resp = await book(api, alice, [first, second], campaign="covid-frontline")
    assert resp.status == 409
    assert (await resp.json())["fields"]["reason"] == "priority_group"
    number = alice["id_number"]
    resp = await api.client.post(
        "/v1/vaccine/priority-groups",
        json={"id_number": number, "groups": ["medical"]},
        headers=api.operator,
    )
    assert resp.status == 200, await resp.text()
    # A citizen cannot attest their own group.
    resp = await api.client.post(
        "/v1/vaccine/priority-groups",
        json={"id_number": number, "groups": ["medical"]},
        headers=alice["headers"],
    )
    assert resp.status == 403
    await book_ok(api, alice, [first, second], campaign="covid-frontline")


async def test_three_dose_product_is_booked_in_dose_order(api: Api, site: Site) -> None:
    slots = await publish(
        api,
        site,
        [
            row(api, product="hepb", days_ahead=1),
            row(api, product="hepb", days_ahead=31),
            row(api, product="hepb", days_ahead=200),
        ],
    )
    d1, d2, d3 = (s["id"] for s in slots)
    alice = await citizen(api)
    # Dose 2 first: refused, dose 1 is neither given nor booked.
    resp = await book(api, alice, [d2], campaign="hepb-adults", first_dose=2)
    assert resp.status == 409
    assert (await resp.json())["fields"]["reason"] == "dose_order"
    await booked_and_confirmed(api, alice, [d1], campaign="hepb-adults")
    # Now dose 2 may be booked on its own (dose 1 is booked, 30 days before).
    await booked_and_confirmed(api, alice, [d2], campaign="hepb-adults")
    await booked_and_confirmed(api, alice, [d3], campaign="hepb-adults")
    resp = await book(api, alice, [d3], campaign="hepb-adults")
    assert resp.status == 409
    assert (await resp.json())["fields"]["reason"] == "already_booked"


async def test_cancel_releases_every_dose(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [first, second])
    resp = await api.client.post(
        f"/v1/vaccine/bookings/{done['id']}/cancel", headers=alice["headers"]
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [a["state"] for a in body["appointments"]] == ["cancelled", "cancelled"]
    assert await available(api, [first, second]) == [10, 10]
    async with api.services.pool.acquire() as conn:
        pending = await conn.fetchval(
            "SELECT count(*) FROM reminders WHERE account_id = $1 AND cancelled_at IS NULL",
            alice["account_id"],
        )
    assert pending == 0
    # Someone else's booking id is "not found".
    bob = await citizen(api, "李四")
    resp = await api.client.post(
        f"/v1/vaccine/bookings/{done['id']}/cancel", headers=bob["headers"]
    )
    assert resp.status == 404
    # And the person may book again.
    await book_ok(api, alice, [first, second])


async def test_my_appointments_lists_them(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [first, second])
    resp = await api.client.get("/v1/vaccine/appointments", headers=alice["headers"])
    body: dict[str, Any] = await resp.json()
    assert {a["id"] for a in body["appointments"]} == {a["id"] for a in done["appointments"]}


async def test_bad_booking_input_is_a_clear_4xx(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"campaign_id": "covid-adults", "slot_ids": [first, first]}, 422),
        ({"campaign_id": "covid-adults", "slot_ids": []}, 422),
        ({"campaign_id": "covid-adults", "slot_ids": [first] * 9}, 422),
        ({"campaign_id": "nope", "slot_ids": [first, second]}, 404),
        ({"campaign_id": "covid-adults", "slot_ids": [first, "s1-0000000000000000"]}, 404),
        ({"campaign_id": "covid-adults", "slot_ids": [first, second], "x": 1}, 422),
        ({"campaign_id": "covid-adults", "slot_ids": [first, second], "first_dose": 0}, 422),
        ({"campaign_id": "covid-adults", "slot_ids": [first, second], "passenger_id": "x"}, 404),
    ]
    for body, status in cases:
        resp = await api.client.post("/v1/vaccine/bookings", json=body, headers=alice["headers"])
        assert resp.status == status, (body, await resp.text())
    # A hospital slot is not a vaccine session.
    [hospital] = await api.publish("hosp-a", [api.slot()])
    resp = await book(api, alice, [first, hospital["id"]])
    assert resp.status == 422, await resp.text()
    # Dose 2 at another site: a series is booked at one site.
    other = await make_site(api, "vx-other-2", "海珠区")
    [elsewhere] = await publish(api, other, [row(api, days_ahead=29)])
    resp = await book(api, alice, [first, elsewhere["id"]])
    assert resp.status == 422
    assert "one site" in (await resp.text())
    # Ids of the wrong shape, or somebody else's, are "not found".
    for path in ("/v1/vaccine/bookings/nope", "/v1/vaccine/bookings/vs-" + "0" * 20):
        assert (await api.client.get(path, headers=alice["headers"])).status == 404
    resp = await api.client.post(
        "/v1/vaccine/bookings", json={"campaign_id": "covid-adults", "slot_ids": [first, second]}
    )
    assert resp.status == 401
    resp = await api.client.post(
        "/v1/vaccine/bookings",
        json={"campaign_id": "covid-adults", "slot_ids": [first, second]},
        headers={**alice["headers"], "Idempotency-Key": "bad key!"},
    )
    assert resp.status == 422
    assert await available(api, [first, second]) == [10, 10]
