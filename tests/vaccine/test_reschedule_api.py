"""Moving a dose: later doses are re-checked, then kept, moved, or released."""

from __future__ import annotations

from typing import Any

from tests.api_fixture import Api
from tests.vaccine.support import (
    Site,
    book,
    booked_and_confirmed,
    citizen,
    publish,
    record,
    row,
)


async def move(api: Api, who: dict[str, Any], appointment_id: str, slot_id: str) -> Any:
    return await api.client.post(
        f"/v1/vaccine/appointments/{appointment_id}/reschedule",
        json={"slot_id": slot_id},
        headers={**who["headers"], "Idempotency-Key": f"move-{appointment_id}-{slot_id}"},
    )


async def test_dose_two_kept_when_it_still_fits(api: Api, site: Site) -> None:
    d1, d1_later, d2 = (
        s["id"]
        for s in await publish(
            api, site, [row(api, days_ahead=1), row(api, days_ahead=3), row(api, days_ahead=30)]
        )
    )
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [d1, d2])
    old1, old2 = done["appointments"]
    resp = await move(api, alice, old1["id"], d1_later)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["released"] == [] and list(body["moved"]) == [old1["id"]]
    live = [a for a in body["appointments"] if a["state"] == "confirmed"]
    assert [(a["dose"], a["slot_id"]) for a in live] == [(1, d1_later), (2, d2)]
    assert live[1]["id"] == old2["id"]
    moved = next(a for a in body["appointments"] if a["id"] == old1["id"])
    assert moved["state"] == "moved" and moved["moved_to"] == live[0]["id"]
    assert live[0]["verification_code"] is not None
    assert await api.services.slots.available([d1, d1_later, d2]) == {d1: 10, d1_later: 9, d2: 9}
    # A retry of the same move changes nothing.
    again = await move(api, alice, old1["id"], d1_later)
    assert again.status == 200
    assert await api.services.slots.available([d1, d1_later]) == {d1: 10, d1_later: 9}
    async with api.services.pool.acquire() as conn:
        kinds = await conn.fetch(
            "SELECT kind FROM notifications WHERE account_id = $1 AND kind = 'changed'",
            alice["account_id"],
        )
    assert len(kinds) == 1


async def test_dose_two_moved_to_the_first_fitting_slot(api: Api, site: Site) -> None:
    slots = await publish(
        api,
        site,
        [
            row(api, days_ahead=1),
            row(api, days_ahead=10),  # dose 1 moves here
            row(api, days_ahead=25),  # dose 2 today: 15 days after the new dose 1, too soon
            row(api, days_ahead=31, capacity=1),  # the first fitting one...
            row(api, days_ahead=32),
        ],
    )
    d1, d1_new, d2, fit_full, fit = (s["id"] for s in slots)
    alice, bob = await citizen(api), await citizen(api, "李四")
    # Bob takes the only place of day 31 (with his own series), so day 32 is the first free.
    await booked_and_confirmed(api, bob, [slots[1]["id"], fit_full])
    done = await booked_and_confirmed(api, alice, [d1, d2])
    resp = await move(api, alice, done["appointments"][0]["id"], d1_new)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    live = [a for a in body["appointments"] if a["state"] == "confirmed"]
    assert [(a["dose"], a["slot_id"]) for a in live] == [(1, d1_new), (2, fit)]
    assert len(body["moved"]) == 2
    assert await api.services.slots.available([d1, d2, fit]) == {d1: 10, d2: 10, fit: 9}


async def test_dose_two_released_when_nothing_fits(api: Api, site: Site) -> None:
    slots = await publish(
        api, site, [row(api, days_ahead=1), row(api, days_ahead=10), row(api, days_ahead=25)]
    )
    d1, d1_new, d2 = (s["id"] for s in slots)
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [d1, d2])
    resp = await move(api, alice, done["appointments"][0]["id"], d1_new)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["released"] == [done["appointments"][1]["id"]]
    live = [a for a in body["appointments"] if a["state"] == "confirmed"]
    assert [(a["dose"], a["slot_id"]) for a in live] == [(1, d1_new)]
    assert await api.services.slots.available([d1, d2]) == {d1: 10, d2: 10}
    [product] = (await (await record(api, alice)).json())["products"]
    assert [a["dose"] for a in product["appointments"]] == [1]
    # Dose 2 can be booked on its own later, in its window after the new dose 1.
    later = await publish(api, site, [row(api, days_ahead=35)])
    await booked_and_confirmed(api, alice, [later[0]["id"]])


async def test_moving_to_a_full_slot_changes_nothing(api: Api, site: Site) -> None:
    slots = await publish(
        api,
        site,
        [row(api, days_ahead=1), row(api, days_ahead=2, capacity=1), row(api, days_ahead=30)],
    )
    d1, full, d2 = (s["id"] for s in slots)
    alice, bob = await citizen(api), await citizen(api, "李四")
    await booked_and_confirmed(api, bob, [full, d2])
    done = await booked_and_confirmed(api, alice, [d1, d2])
    resp = await move(api, alice, done["appointments"][0]["id"], full)
    assert resp.status == 409 and (await resp.json())["code"] == "sold_out"
    after = await (
        await api.client.get(f"/v1/vaccine/bookings/{done['id']}", headers=alice["headers"])
    ).json()
    assert [a["state"] for a in after["appointments"]] == ["confirmed", "confirmed"]
    # Only a confirmed appointment of one's own can be moved.
    assert (await move(api, bob, done["appointments"][0]["id"], d1)).status == 404
    held = await book(api, alice, [d1, d2], campaign="covid-adults")
    assert held.status == 409  # already booked: one live series per person
