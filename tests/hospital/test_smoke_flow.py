"""Publish, browse, book, pay, cancel: the basic path over HTTP."""

from __future__ import annotations

import datetime as dt

from tests.api_fixture import Api
from tests.hospital.support import (
    book_and_pay,
    citizen,
    my_registrations,
    notifications_of,
    publish,
    row,
    slots_of,
    today,
)


async def test_publish_browse_book_pay_and_cancel(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    sessions = await publish(api, [row(day=day, capacity=3, counter=1)])
    assert sessions[0]["created"] and sessions[0]["slots"] == 2
    assert sessions[0]["counter_places"] == 2

    resp = await api.client.get("/v1/hospital/hospitals")
    hospitals = (await resp.json())["hospitals"]
    assert [h["id"] for h in hospitals if h["departments"]] == ["hosp-a"]

    online = await slots_of(api, "dr-li", day)
    assert [s["available"] for s in online] == [2, 2]
    counter = await slots_of(api, "dr-li", day, channel="counter")
    assert [s["available"] for s in counter] == [1, 1]

    who = await citizen(api)
    reg = await book_and_pay(api, who["headers"], online[0]["id"])
    assert reg["state"] == "confirmed" and len(reg["verification_code"]) == 8

    mine = await my_registrations(api, who["headers"])
    assert [r["id"] for r in mine] == [reg["id"]]

    resp = await api.client.post(
        f"/v1/hospital/registrations/{reg['id']}/cancel", headers=who["headers"]
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "cancelled"
    assert [s["available"] for s in await slots_of(api, "dr-li", day)] == [2, 2]
    kinds = [n["kind"] for n in await notifications_of(api, who["account_id"])]
    assert kinds == ["held", "confirmed", "cancelled"]
