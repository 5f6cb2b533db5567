"""Vaccine waitlist (issue 5): wait for a product at a site or a district over days; a
freed place goes to the line before open sale, as a held series made by the vaccine's own
rules (dose 1 at the freed place, dose 2 in its interval at the same site, atomically)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reservation.workers.sweeper import Sweeper
from reservation.workflows import vaccine_waitlist
from tests.api_fixture import Api
from tests.vaccine.support import (
    Site,
    add_parent,
    book,
    book_ok,
    citizen,
    confirm,
    local_today,
    make_site,
    publish,
    row,
    two_dose_slots,
)
from tests.waitlist.support import fill, persist


async def wait(
    api: Api, who: dict[str, Any], body: dict[str, Any], status: int = 201, key: str = "w1"
) -> Any:
    resp = await api.client.post(
        "/v1/vaccine/waitlist", json=body, headers={**who["headers"], "Idempotency-Key": key}
    )
    assert resp.status == status, await resp.text()
    return await resp.json()


def body_for(api: Api, site: Site | None = None, days: int = 1, **extra: Any) -> dict[str, Any]:
    day = local_today(api) + dt.timedelta(days=1)
    body: dict[str, Any] = {
        "campaign_id": "covid-adults",
        "first_day": day.isoformat(),
        "last_day": (day + dt.timedelta(days=days - 1)).isoformat(),
        **extra,
    }
    if site is not None:
        body["site_id"] = site.id
    return body


async def expire_holds(api: Api) -> int:
    api.clock.now_ms += (api.services.settings.slot_hold_seconds + 1) * 1000
    return await Sweeper(api.services, list(range(api.services.settings.shard_count))).run_once()


async def notes(api: Api, account_id: str) -> list[str]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind FROM notifications WHERE account_id = $1 ORDER BY id", account_id
        )
    return [r["kind"] for r in rows]


async def test_an_expired_dose_goes_to_the_line_as_a_full_series(api: Api, site: Site) -> None:
    dose1, dose2 = await two_dose_slots(api, site, capacity=1, dose2_capacity=5)
    idler, waiter, stranger = [await citizen(api) for _ in range(3)]
    await book_ok(api, idler, [dose1, dose2], key="idle")
    order = await wait(api, waiter, body_for(api, site))
    assert (order["state"], order["position"]) == ("waiting", 1)

    assert await expire_holds(api) == 2
    # dose 1's place is kept for the line: nobody may book it on open sale meanwhile
    resp = await book(api, stranger, [dose1, dose2], key="s")
    assert resp.status == 409
    assert (await resp.json())["fields"]["dose"] == 1

    report = await fill(api)
    assert report.fulfilled == 1
    resp = await api.client.get(f"/v1/vaccine/waitlist/{order['id']}", headers=waiter["headers"])
    done = await resp.json()
    assert (done["state"], done["position"]) == ("fulfilled", None)
    resp = await api.client.get(
        f"/v1/vaccine/bookings/{done['series_id']}", headers=waiter["headers"]
    )
    assert resp.status == 200, await resp.text()
    series = await resp.json()
    assert sorted((a["dose"], a["slot_id"]) for a in series["appointments"]) == [
        (1, dose1),
        (2, dose2),
    ]
    kinds = await notes(api, waiter["account_id"])
    assert kinds.count("held") == 2 and "waitlist_fulfilled" in kinds
    # one dose alone cannot be confirmed generically: the series marker is on the holds
    first = next(a for a in series["appointments"] if a["dose"] == 1)
    resp = await api.client.post(f"/v1/bookings/{first['id']}/confirm", headers=waiter["headers"])
    assert (resp.status, (await resp.json())["code"]) == (409, "series_hold")
    resp = await confirm(api, waiter, done["series_id"])
    assert resp.status == 200, await resp.text()
    assert (await api.services.slots.available([dose1, dose2])) == {dose1: 0, dose2: 4}


async def test_no_dose_2_in_the_interval_skips_the_order(api: Api, site: Site) -> None:
    """A series product needs dose 2 at the same site: without one the order keeps waiting
    and, nobody else waiting, the place goes back on sale."""
    dose1, dose2 = await two_dose_slots(api, site, capacity=1, dose2_capacity=1)
    idler, waiter, other = [await citizen(api) for _ in range(3)]
    await book_ok(api, idler, [dose1, dose2], key="idle")
    order = await wait(api, waiter, body_for(api, site))
    await expire_holds(api)
    # dose 2's place went straight back on sale (nobody waits on its day): take it away
    [late] = await publish(api, site, [row(api, days_ahead=2, capacity=1)])
    late_id = late["id"]
    await book_ok(api, other, [late_id, dose2], key="o")
    await fill(api)
    resp = await api.client.get(f"/v1/vaccine/waitlist/{order['id']}", headers=waiter["headers"])
    assert (await resp.json())["state"] == "waiting"
    assert (await api.services.slots.available([dose1]))[dose1] == 1


async def test_filing_rules(api: Api, site: Site) -> None:
    dose1, dose2 = await two_dose_slots(api, site, capacity=2)
    who = await citizen(api)
    refused = await wait(api, who, body_for(api, site), 409)
    assert refused["code"] == "not_sold_out"  # book it instead
    parent = await add_parent(api, who)  # 76 years old: not in covid-adults' 18-59
    await book_ok(api, await citizen(api), [dose1, dose2], key="a")
    await book_ok(api, await citizen(api), [dose1, dose2], key="b")
    refused = await wait(api, who, body_for(api, site, passenger_id=parent), 409, "p")
    assert (refused["code"], refused["fields"]["reason"]) == ("not_eligible", "age_band")
    bad = await wait(api, who, body_for(api, site, days=15), 422, "long")
    assert bad["code"] == "bad_waitlist_order"
    district = await wait(
        api, who, body_for(api, city_code="4401", district="天河区"), 201, "district"
    )
    assert district["sites"] == 1
    again = await wait(
        api, who, body_for(api, city_code="4401", district="天河区"), 201, "district"
    )
    assert again["id"] == district["id"]
    resp = await api.client.post(
        f"/v1/vaccine/waitlist/{district['id']}/cancel", headers=who["headers"]
    )
    assert (await resp.json())["state"] == "cancelled"
    other = await citizen(api)
    resp = await api.client.get(f"/v1/vaccine/waitlist/{district['id']}", headers=other["headers"])
    assert resp.status == 404


async def test_the_deadline_ends_the_order(api: Api) -> None:
    site = await make_site(api, "vx-deadline")
    dose1, dose2 = await two_dose_slots(api, site, capacity=1)
    await book_ok(api, await citizen(api), [dose1, dose2], key="x")
    who = await citizen(api)
    until = (api.clock.now + dt.timedelta(minutes=5)).isoformat()
    order = await wait(api, who, body_for(api, site, deadline=until))
    api.clock.now_ms += 6 * 60_000
    assert (await fill(api)).ended == 1
    resp = await api.client.get(f"/v1/vaccine/waitlist/{order['id']}", headers=who["headers"])
    assert (await resp.json())["state"] == "ended"
    assert "waitlist_ended" in await notes(api, who["account_id"])


async def test_a_series_held_before_a_crash_is_recorded_by_the_next_pass(
    api: Api, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filler held the order's doses in Redis (one script call) and died before the
    transaction recording them: the next pass finds the live bookings of the waiting order
    with no appointments and records them, numbered as the fulfilment would have."""
    dose1, dose2 = await two_dose_slots(api, site, capacity=1, dose2_capacity=5)
    idler, waiter = [await citizen(api) for _ in range(2)]
    await book_ok(api, idler, [dose1, dose2], key="idle")
    order = await wait(api, waiter, body_for(api, site))
    assert await expire_holds(api) == 2

    async def crash(*args: object, **kwargs: object) -> None:
        raise ConnectionResetError("the process died here")

    monkeypatch.setattr(vaccine_waitlist, "_record_fulfilment", crash)
    with pytest.raises(ConnectionResetError):
        await fill(api)
    monkeypatch.undo()
    resp = await api.client.get(f"/v1/vaccine/waitlist/{order['id']}", headers=waiter["headers"])
    assert (await resp.json())["state"] == "waiting"  # not recorded: nobody was told
    assert (await api.services.slots.available([dose1, dose2])) == {dose1: 0, dose2: 4}

    await persist(api)
    await fill(api)
    resp = await api.client.get(f"/v1/vaccine/waitlist/{order['id']}", headers=waiter["headers"])
    done = await resp.json()
    assert done["state"] == "fulfilled"
    resp = await api.client.get(
        f"/v1/vaccine/bookings/{done['series_id']}", headers=waiter["headers"]
    )
    series = await resp.json()
    assert sorted((a["dose"], a["slot_id"], a["state"]) for a in series["appointments"]) == [
        (1, dose1, "held"),
        (2, dose2, "held"),
    ]
    assert (await notes(api, waiter["account_id"])).count("waitlist_fulfilled") == 1
    resp = await confirm(api, waiter, done["series_id"])
    assert resp.status == 200, await resp.text()
    # The places were taken once: nothing more was held for anybody.
    assert (await api.services.slots.available([dose1, dose2])) == {dose1: 0, dose2: 4}
