"""Booking for a listed person (consent), their record, and the site's side: publishing
sessions (JSON, CSV, bad rows), a day's appointments, check-in, doses given (audited)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reservation.fairness import audit
from tests.api_fixture import Api
from tests.helpers import make_id_number
from tests.vaccine.support import (
    Site,
    add_parent,
    book,
    book_ok,
    booked_and_confirmed,
    citizen,
    local_today,
    make_site,
    publish,
    record,
    row,
    two_dose_slots,
)


async def test_proxy_booking_needs_consent(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    parent = await add_parent(api, alice, consent=False)
    resp = await book(api, alice, [first, second], campaign="covid-elderly", passenger_id=parent)
    assert resp.status == 403
    assert (await resp.json())["code"] == "consent_required"
    assert (await record(api, alice, parent)).status == 403
    assert (await api.services.slots.available([first]))[first] == 10

    resp = await api.client.post(
        f"/v1/passengers/{parent}/consent",
        json={"statement": "我同意 (by phone)"},
        headers=alice["headers"],
    )
    assert resp.status == 201, await resp.text()
    # The parent's birth date decides: 76 years old, so the elderly campaign, not adults.
    resp = await book(api, alice, [first, second], campaign="covid-adults", passenger_id=parent)
    assert (await resp.json())["fields"]["reason"] == "age_band"
    held = await book_ok(api, alice, [first, second], campaign="covid-elderly", passenger_id=parent)
    assert held["appointments"][0]["person"]["passenger_id"] == parent

    # Withdrawn consent stops further bookings and reads of the record.
    resp = await api.client.delete(f"/v1/passengers/{parent}/consent", headers=alice["headers"])
    assert resp.status == 204
    assert (await record(api, alice, parent)).status == 403


async def test_the_parents_record_shows_the_series_and_not_the_childs(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    parent = await add_parent(api, alice)
    done = await booked_and_confirmed(
        api, alice, [first, second], campaign="covid-elderly", passenger_id=parent
    )
    resp = await record(api, alice, parent)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["person"]["name"] == "张父"
    assert body["person"]["birth_date"] == "1950-05-01"
    [product] = body["products"]
    assert [a["id"] for a in product["appointments"]] == [a["id"] for a in done["appointments"]]
    assert [a["state"] for a in product["appointments"]] == ["confirmed", "confirmed"]
    # Alice's own record is empty: the doses are the parent's.
    assert (await (await record(api, alice)).json())["products"] == []
    # Another account cannot name that passenger.
    bob = await citizen(api, "李四")
    assert (await record(api, bob, parent)).status == 404
    resp = await book(api, bob, [first, second], campaign="covid-elderly", passenger_id=parent)
    assert resp.status == 404


async def test_one_person_one_live_series_whoever_books(api: Api, site: Site) -> None:
    """Two children list the same parent: the second booking sees the first."""
    first, second = await two_dose_slots(api, site)
    alice, bob = await citizen(api), await citizen(api, "张二")
    born = dt.date(1948, 3, 3)
    number = make_id_number(born)
    ids = []
    for who in (alice, bob):
        resp = await api.client.post(
            "/v1/passengers", json={"name": "张父", "id_number": number}, headers=who["headers"]
        )
        pid = (await resp.json())["id"]
        await api.client.post(
            f"/v1/passengers/{pid}/consent", json={"statement": "ok"}, headers=who["headers"]
        )
        ids.append(pid)
    await booked_and_confirmed(
        api, alice, [first, second], campaign="covid-elderly", passenger_id=ids[0]
    )
    third, fourth = await two_dose_slots(api, site, gap=30)
    resp = await book(api, bob, [third, fourth], campaign="covid-elderly", passenger_id=ids[1])
    assert resp.status == 409
    assert (await resp.json())["fields"]["reason"] == "already_booked"


async def test_publish_rejects_bad_rows_and_publishes_nothing(api: Api, site: Site) -> None:
    yesterday = (local_today(api) - dt.timedelta(days=1)).isoformat()
    rows: list[dict[str, Any]] = [
        row(api),  # fine
        row(api, capacity=0),  # capacity 0 (and overlaps row 0)
        {**row(api, days_ahead=2), "day": yesterday},  # in the past
        row(api, product="nope", days_ahead=3),  # unknown product
        {**row(api, days_ahead=4), "start": "25:00"},  # does not parse
        row(api, days_ahead=5, start="09:00", end="10:00"),
        row(api, days_ahead=5, start="09:30", end="10:30"),  # overlaps row 5
    ]
    resp = await api.client.post(
        f"/v1/providers/{site.id}/vaccine/sessions", json={"rows": rows}, headers=site.headers
    )
    assert resp.status == 422, await resp.text()
    errors = (await resp.json())["fields"]["errors"]
    assert {e["row"] for e in errors} == {1, 2, 3, 4, 6}
    assert {(e["row"], e["field"]) for e in errors} >= {
        (1, "capacity"),
        (2, "starts_at"),
        (3, "product"),
        (4, "start"),
        (6, "starts_at"),
    }
    async with api.services.pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM slots WHERE provider_id = $1", site.id) == 0
        )


async def test_publish_csv(api: Api, site: Site) -> None:
    day = (local_today(api) + dt.timedelta(days=2)).isoformat()
    good = f"product,day,start,end,capacity\nflu,{day},09:00,09:30,5\nflu,{day},09:30,10:00,5\n"
    url = f"/v1/providers/{site.id}/vaccine/sessions.csv"
    headers = {**site.headers, "Content-Type": "text/csv"}
    bad = good + f"flu,{day},10:00,10:30,zero\nflu,{day},10:00\n"
    resp = await api.client.post(url, data=bad, headers=headers)
    assert resp.status == 422, await resp.text()
    errors = (await resp.json())["fields"]["errors"]
    assert {e["row"] for e in errors} == {2, 3}
    resp = await api.client.post(url, data="product,day\nflu,2030-01-01\n", headers=headers)
    assert resp.status == 422
    resp = await api.client.post(url, data=b"product,day\n\xff\xfe\n", headers=headers)
    assert resp.status == 422
    resp = await api.client.post(url, data="product,day,start,end,capacity\n", headers=headers)
    assert resp.status == 422  # no rows: nothing to publish
    resp = await api.client.post(url, data=good, headers=headers)
    assert resp.status == 201, await resp.text()
    assert len((await resp.json())["slots"]) == 2
    # JSON to the CSV route is refused clearly.
    resp = await api.client.post(url, json={"rows": []}, headers=site.headers)
    assert resp.status == 415


async def test_staff_of_another_site_cannot_publish(api: Api, site: Site) -> None:
    other = await make_site(api, "vx-other", "越秀区")
    resp = await api.client.post(
        f"/v1/providers/{site.id}/vaccine/sessions",
        json={"rows": [row(api)]},
        headers=other.headers,
    )
    assert resp.status == 403
    # A hospital is not a vaccination site.
    resp = await api.client.post(
        "/v1/providers/hosp-a/vaccine/sessions",
        json={"rows": [row(api)]},
        headers=api.staff_headers("hosp-a"),
    )
    assert resp.status == 404


async def test_check_in_and_dose_given_fill_the_record(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    parent = await add_parent(api, alice)
    done = await booked_and_confirmed(
        api, alice, [first, second], campaign="covid-elderly", passenger_id=parent
    )
    dose1, dose2 = done["appointments"]
    base = f"/v1/providers/{site.id}/vaccine"
    # Dose 2 cannot be recorded before dose 1.
    resp = await api.client.post(
        f"{base}/appointments/{dose2['id']}/given", json={}, headers=site.headers
    )
    assert resp.status == 409
    # Check-in works on the appointment's day only.
    resp = await api.client.post(
        f"{base}/check-in", json={"code": dose1["verification_code"]}, headers=site.headers
    )
    assert resp.status == 409 and (await resp.json())["fields"]["reason"] == "not_today"
    api.clock.advance(24 * 3600)
    resp = await api.client.post(
        f"{base}/check-in", json={"code": dose1["verification_code"].lower()}, headers=site.headers
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["checked_in_at"] is not None
    resp = await api.client.post(
        f"{base}/check-in", json={"code": "ABCD-EFGH"}, headers=site.headers
    )
    assert resp.status == 404
    day = local_today(api).isoformat()
    resp = await api.client.get(f"{base}/appointments?day={day}", headers=site.headers)
    listed = (await resp.json())["appointments"]
    assert [a["id"] for a in listed] == [dose1["id"]]
    assert listed[0]["verification_code"] is None

    resp = await api.client.post(
        f"{base}/appointments/{dose1['id']}/given", json={"lot": "L2026-11"}, headers=site.headers
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "given"
    body = await (await record(api, alice, parent)).json()
    [product] = body["products"]
    assert product["given"][0]["dose"] == 1 and product["given"][0]["lot"] == "L2026-11"
    given_on = dt.date.fromisoformat(product["given"][0]["given_on"])
    assert product["next_due"] == {
        "dose": 2,
        "from": (given_on + dt.timedelta(days=21)).isoformat(),
        "until": (given_on + dt.timedelta(days=42)).isoformat(),
    }
    assert [a["dose"] for a in product["appointments"]] == [2]
    async with api.services.pool.acquire() as conn:
        entries = await audit.export(conn, f"vaccine-site:{site.id}")
    actions = [e["payload"].get("action") for e in entries if e["kind"] == "staff_action"]
    assert actions == ["check_in", "dose_given"]
    assert any(e["kind"] == "release" for e in entries)


async def test_find_sites_and_their_slots(api: Api, site: Site) -> None:
    other = await make_site(api, "vx-yuexiu-1", "越秀区")
    await publish(api, site, [row(api, capacity=7), row(api, product="flu", capacity=3)])
    await publish(api, other, [row(api, product="flu", capacity=4)])
    tomorrow = (local_today(api) + dt.timedelta(days=1)).isoformat()
    resp = await api.client.get(f"/v1/vaccine/sites?city=广州&product=flu&day={tomorrow}")
    sites = (await resp.json())["sites"]
    assert {s["id"]: s["available"] for s in sites} == {site.id: 3, other.id: 4}
    resp = await api.client.get("/v1/vaccine/sites?city=Guangzhou&district=越秀区")
    assert [s["id"] for s in (await resp.json())["sites"]] == [other.id]
    resp = await api.client.get("/v1/vaccine/sites?city=4401&product=covid-inact")
    assert [s["id"] for s in (await resp.json())["sites"]] == [site.id]
    resp = await api.client.get(f"/v1/vaccine/sites/{site.id}/slots?product=covid-inact")
    [slot] = (await resp.json())["slots"]
    assert slot["available"] == 7 and slot["product"] == "covid-inact"
    assert (await api.client.get("/v1/vaccine/sites/nope/slots")).status == 404
    assert (await api.client.get("/v1/vaccine/sites?limit=0")).status == 422


async def test_eligibility(api: Api, site: Site) -> None:
    alice = await citizen(api)
    day = (local_today(api) + dt.timedelta(days=3)).isoformat()
    url = f"/v1/vaccine/eligibility?campaign_id=covid-adults&day={day}"
    body = await (await api.client.get(url, headers=alice["headers"])).json()
    assert body["eligible"] is True and body["next_dose"] == 1
    assert body["book_with_next_dose"] is True
    body = await (
        await api.client.get(url.replace("adults", "elderly"), headers=alice["headers"])
    ).json()
    assert body["eligible"] is False and body["reason"] == "age_band"
    resp = await api.client.get(url.replace("covid-adults", "nope"), headers=alice["headers"])
    assert resp.status == 404
    resp = await api.client.get(
        "/v1/vaccine/eligibility?campaign_id=x&day=soon", headers=alice["headers"]
    )
    assert resp.status == 422
