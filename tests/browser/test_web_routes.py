"""The web app's server side without a browser: pages and static files (caching, gzip,
security headers, the script budget), CSV upload of slots, the dashboard's JSON routes."""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.resources

from reservation.domain.clock import CHINA
from reservation.web.csv_slots import parse_slots_csv
from tests.api_fixture import Api
from tests.fairness.queue_support import citizens, join, queued_sale

HEADER = "resource_code,starts_at,ends_at,capacity,release_at"
# Scripts only the staff consoles load; everything else counts for the citizen's phone.
CONSOLE_ONLY = {"provider.js", "provider_extra.js", "operator.js", "staff.js"}


async def test_pages_are_served_with_a_strict_policy(api: Api) -> None:
    for path, marker in (("/", "/static/app.js"), ("/provider", "/static/provider.js"),
                         ("/operator", "/static/operator.js")):  # fmt: skip
        resp = await api.client.get(path)
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert marker in await resp.text()
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_static_files_revalidate_and_compress(api: Api) -> None:
    resp = await api.client.get("/static/citizen.js", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.content_type == "text/javascript"
    assert resp.headers["Content-Encoding"] == "gzip"
    body = await resp.read()  # aiohttp decompresses
    assert b"export const routes" in body
    etag = resp.headers["ETag"]
    again = await api.client.get("/static/citizen.js", headers={"If-None-Match": etag})
    assert again.status == 304
    for bad in ("/static/nope.js", "/static/..%2Fapi%2Fweb.py", "/static/app.py"):
        assert (await api.client.get(bad)).status == 404, bad


def test_the_citizen_app_stays_well_under_200_kb_of_script() -> None:
    static = importlib.resources.files("reservation.web") / "static"
    scripts = [
        f.read_bytes()
        for f in static.iterdir()
        if f.name.endswith((".js", ".mjs")) and f.name not in CONSOLE_ONLY
    ]
    assert len(scripts) >= 10
    raw, zipped = sum(map(len, scripts)), sum(len(gzip.compress(s)) for s in scripts)
    assert raw < 175_000, raw
    assert zipped < 60_000, zipped  # what a phone downloads (the QR encoder only on a ticket)


def _day(days: int) -> str:
    return (dt.datetime.now(CHINA) + dt.timedelta(days=days)).date().isoformat()


def test_csv_rows_are_parsed_with_china_time_and_line_numbers() -> None:
    day = _day(3)
    parsed = parse_slots_csv(
        "\ufeff" + HEADER + f"\ndr-li,{day} 08:00,{day}T08:30+08:00,5,{day} 07:00\n\n"
    )
    assert parsed.errors == []
    (draft,) = parsed.drafts
    assert draft.starts_at.utcoffset() == dt.timedelta(hours=8)
    assert draft.starts_at.hour == 8 and draft.capacity == 5
    assert parsed.lines == [2]

    bad = parse_slots_csv(HEADER + f"\ndr-li,{day} 08:00,{day} 08:30,5,x\ndr li,soon,,two,\n")
    assert [(e["line"], e["field"]) for e in bad.errors] == [
        (2, "release_at"),
        (3, "resource_code"),
        (3, "starts_at"),
        (3, "ends_at"),
        (3, "release_at"),
        (3, "capacity"),
    ]
    assert parse_slots_csv("code,when\n").errors[0]["field"] == "header"
    assert parse_slots_csv(HEADER + "\n").errors[0]["field"] == "file"


async def test_csv_upload_publishes_nothing_when_one_row_is_bad(api: Api) -> None:
    await api.publish("hosp-a", [api.slot(hours_ahead=24 * 5)])  # creates resource dr-li
    day = _day(9)
    rows = [
        f"dr-li,{day} 08:00,{day} 08:30,5,{day} 00:00",
        f"dr-li,{day} 09:00,{day} 08:45,5,{day} 00:00",  # ends before it starts
        f"dr-li,{day} 10:00,{day} 10:30,5,{day} 00:00",
    ]
    url = "/v1/providers/hosp-a/slots/csv"
    headers = {**api.staff_headers("hosp-a"), "Content-Type": "text/csv"}
    resp = await api.client.post(url, data="\n".join([HEADER, *rows]), headers=headers)
    assert resp.status == 422
    body = await resp.json()
    assert [(e["line"], e["field"]) for e in body["fields"]["errors"]] == [(3, "ends_at")]
    listed = await api.client.get(
        "/v1/providers/hosp-a/slots", params={"day": day}, headers=api.staff_headers("hosp-a")
    )
    assert (await listed.json())["slots"] == []

    rows[1] = f"dr-li,{day} 09:00,{day} 09:30,5,{day} 00:00"
    resp = await api.client.post(url, data="\n".join([HEADER, *rows]), headers=headers)
    assert resp.status == 201, await resp.text()
    out = await resp.json()
    assert (out["published"], out["created"]) == (3, 3)
    assert [s["line"] for s in out["slots"]] == [2, 3, 4]

    other = {**api.staff_headers("hosp-b"), "Content-Type": "text/csv"}
    assert (await api.client.post(url, data=HEADER, headers=other)).status == 403
    wrong_type = {**api.staff_headers("hosp-a"), "Content-Type": "application/json"}
    assert (await api.client.post(url, data="{}", headers=wrong_type)).status == 415


async def test_dashboard_routes_are_for_operators(api: Api) -> None:
    who = await api.client.get("/v1/staff/whoami", headers=api.staff_headers("hosp-a"))
    assert await who.json() == {
        "role": "staff",
        "provider_id": "hosp-a",
        "provider_kind": "hospital",
    }
    staff = api.staff_headers("hosp-a")
    for path in ("/v1/operator/dashboard/live", "/v1/operator/dashboard/audit"):
        assert (await api.client.get(path, headers=staff)).status == 403
    live = await (await api.client.get("/v1/operator/dashboard/live", headers=api.operator)).json()
    assert live["holds_total"] == 0 and live["dead_letters"] == 0
    audit = await (
        await api.client.get("/v1/operator/dashboard/audit", headers=api.operator)
    ).json()
    assert audit["ok"] is True


async def test_dashboard_counts_a_waiting_room(api: Api) -> None:
    sale, _ = await queued_sale(api, sale_id="sale-dash")
    for _, headers in await citizens(api, 3):
        await join(api, sale["sale_id"], headers)
    resp = await api.client.get(
        "/v1/operator/dashboard/live", params={"sale_id": "sale-dash"}, headers=api.operator
    )
    queue = (await resp.json())["queue"]
    assert (queue["joined"], queue["admitted_upto"], queue["waiting"]) == (3, 0, 3)
    resp = await api.client.get(
        "/v1/operator/dashboard/live", params={"sale_id": "no-such-sale"}, headers=api.operator
    )
    assert (await resp.json())["queue"] is None
    resp = await api.client.get(
        "/v1/operator/dashboard/live", params={"sale_id": "{bad}"}, headers=api.operator
    )
    assert resp.status == 422
