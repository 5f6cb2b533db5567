"""Hospital and vaccination slots are never obtained through the generic slot routes
(issues 5 and 6): ``POST /v1/bookings`` and ``POST /v1/waitlist/slots`` answer 409 naming
the domain's own route, so its rules (department and day limits, suspension, counter
share; eligibility, dose order, series) cannot be skipped."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reservation.domain.slot_domains import HOSPITAL_RESOURCE_PREFIX, VACCINE_RESOURCE_PREFIX
from tests.api_fixture import Api
from tests.helpers import register
from tests.hospital import support as hospital
from tests.vaccine import support as vaccine
from tests.waitlist.support import deadline, post


async def resource_of(api: Api, slot_id: str) -> tuple[str, str]:
    async with api.services.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT resource_id, day FROM slots WHERE id = $1", slot_id)
    return str(row["resource_id"]), row["day"].isoformat()


async def sold_out_generically(api: Api, slot_id: str) -> None:
    """No place left: the generic waitlist would accept a filing."""
    assert (await api.services.slots.available([slot_id]))[slot_id] == 0


async def refused_everywhere(api: Api, slot_id: str, code: str) -> None:
    who = await register(api.client)
    body = await post(api, "/v1/bookings", who, {"slot_id": slot_id}, 409)
    assert body["code"] == code, body
    assert body["fields"]["slot_id"] == slot_id
    resource_id, day = await resource_of(api, slot_id)
    wait = {
        "resource_ids": [resource_id],
        "first_day": day,
        "last_day": day,
        "deadline": deadline(api),
    }
    body = await post(api, "/v1/waitlist/slots", who, wait, 409)
    assert body["code"] == code, body
    assert body["fields"]["resource_id"] == resource_id
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM waitlist_orders") == 0


async def test_a_hospital_slot_is_refused_by_the_generic_hold_and_waitlist(api: Api) -> None:
    day = hospital.today(api) + dt.timedelta(days=2)
    await hospital.publish(api, [hospital.row(day=day, capacity=1, counter=0)])
    slot = (await hospital.slots_of(api, "dr-li", day))[0]
    assert (await resource_of(api, slot["id"]))[0].startswith(HOSPITAL_RESOURCE_PREFIX)
    before = (await api.services.slots.available([slot["id"]]))[slot["id"]]
    await refused_everywhere(api, slot["id"], "use_hospital_route")
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == before == 1
    # the hospital's own route still books it, and then the waitlist still refuses it
    patient = await hospital.citizen(api)
    status, held = await hospital.book(api, patient["headers"], slot["id"])
    assert status == 201, held
    await sold_out_generically(api, slot["id"])
    await refused_everywhere(api, slot["id"], "use_hospital_route")


async def test_a_vaccine_slot_is_refused_by_the_generic_hold_and_waitlist(api: Api) -> None:
    site = await vaccine.make_site(api, "vx-guard-1")
    [slot] = await vaccine.publish(api, site, [vaccine.row(api, product="flu", capacity=1)])
    assert (await resource_of(api, slot["id"]))[0].startswith(VACCINE_RESOURCE_PREFIX)
    await refused_everywhere(api, slot["id"], "use_vaccine_route")
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == 1
    who = await vaccine.citizen(api)
    resp = await api.client.post(
        "/v1/vaccine/bookings",
        json={"campaign_id": "flu-season", "slot_ids": [slot["id"]]},
        headers={**who["headers"], "Idempotency-Key": "v1"},
    )
    assert resp.status == 201, await resp.text()
    await sold_out_generically(api, slot["id"])
    await refused_everywhere(api, slot["id"], "use_vaccine_route")


async def test_a_vaccine_resource_published_before_the_prefix_is_still_refused(
    api: Api,
) -> None:
    """Old ids ("r" + hex) keep working in the vaccine routes and stay refused here."""
    site = await vaccine.make_site(api, "vx-guard-2")
    async with api.services.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO resources (id, provider_id, code, name, kind, details)"
            " VALUES ('r0123456789abcdef', $1, 'flu', 'Flu', 'vaccination', '{}')",
            site.id,
        )
    [slot] = await vaccine.publish(api, site, [vaccine.row(api, product="flu", capacity=1)])
    assert (await resource_of(api, slot["id"]))[0] == "r0123456789abcdef"
    await refused_everywhere(api, slot["id"], "use_vaccine_route")
    who = await vaccine.citizen(api)
    resp = await api.client.post(
        "/v1/vaccine/bookings",
        json={"campaign_id": "flu-season", "slot_ids": [slot["id"]]},
        headers={**who["headers"], "Idempotency-Key": "v1"},
    )
    assert resp.status == 201, await resp.text()


async def test_a_generic_slot_stays_bookable_and_waitable(api: Api) -> None:
    """The guard does not touch generic resources (the demo's own "vaccination" line
    without a vaccine product is generic)."""
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    who = await register(api.client)
    held: dict[str, Any] = await post(api, "/v1/bookings", who, {"slot_id": slot["id"]}, 201)
    assert held["state"] == "held"
