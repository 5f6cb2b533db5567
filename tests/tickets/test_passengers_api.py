"""The passenger list over HTTP: the holder first, add / list / delete, the limit of 15,
duplicates, invalid ID numbers, and ownership."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from reservation.domain.identity import id_hmac
from reservation.store import passengers as passenger_store
from tests.api_fixture import Api
from tests.helpers import make_id_number, register


async def listed(api: Api, citizen: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await api.client.get("/v1/passengers", headers=citizen["headers"])
    assert resp.status == 200, await resp.text()
    people: list[dict[str, Any]] = (await resp.json())["passengers"]
    return people


async def add(
    api: Api, citizen: dict[str, Any], number: str, name: str = "李四", **extra: Any
) -> Any:
    return await api.client.post(
        "/v1/passengers",
        json={"name": name, "id_number": number, **extra},
        headers=citizen["headers"],
    )


async def test_the_holder_comes_first_then_added_passengers(api: Api) -> None:
    alice = await register(api.client, name="王芳")
    [holder] = await listed(api, alice)
    assert holder["name"] == "王芳"
    assert holder["is_holder"] is True
    assert holder["id_masked"] == alice["id_masked"]
    assert holder["kind"] == "adult"
    number = make_id_number(dt.date(2015, 6, 1), region="310101")
    resp = await add(api, alice, number, name="王小明", kind="child")
    assert resp.status == 201, await resp.text()
    child = await resp.json()
    assert child["id"].startswith("pa-")
    assert child == {
        "id": child["id"],
        "name": "王小明",
        "id_masked": number[:6] + "********" + number[-4:],
        "kind": "child",
        "is_holder": False,
        "birth_date": "2015-06-01",
    }
    assert number not in await resp.text()  # the raw number never comes back
    assert [p["name"] for p in await listed(api, alice)] == ["王芳", "王小明"]
    # Listing again does not add the holder twice.
    assert len(await listed(api, alice)) == 2


async def test_delete_removes_a_passenger_but_never_the_holder(api: Api) -> None:
    alice = await register(api.client)
    bob = await (await add(api, alice, make_id_number())).json()
    resp = await api.client.delete(f"/v1/passengers/{bob['id']}", headers=alice["headers"])
    assert resp.status == 204
    again = await api.client.delete(f"/v1/passengers/{bob['id']}", headers=alice["headers"])
    assert again.status == 404
    [holder] = await listed(api, alice)
    resp = await api.client.delete(f"/v1/passengers/{holder['id']}", headers=alice["headers"])
    assert resp.status == 409
    assert (await resp.json())["fields"] == {"reason": "holder"}
    malformed = await api.client.delete("/v1/passengers/nope", headers=alice["headers"])
    assert malformed.status == 404


async def test_fifteen_people_in_all_the_sixteenth_is_refused(api: Api) -> None:
    alice = await register(api.client)
    for _ in range(14):  # plus the holder: 15
        resp = await add(api, alice, make_id_number())
        assert resp.status == 201, await resp.text()
    resp = await add(api, alice, make_id_number())
    assert resp.status == 409
    body = await resp.json()
    assert body["code"] == "conflict"
    assert body["fields"] == {"reason": "passenger_list_full", "field": "id_number"}
    assert len(await listed(api, alice)) == 15


async def test_concurrent_additions_cannot_pass_the_limit(api: Api) -> None:
    alice = await register(api.client)
    for _ in range(12):
        assert (await add(api, alice, make_id_number())).status == 201
    # 13 listed: of 5 racing additions exactly 2 fit.
    replies = await asyncio.gather(*(add(api, alice, make_id_number()) for _ in range(5)))
    assert sorted(r.status for r in replies) == [201, 201, 409, 409, 409]
    assert len(await listed(api, alice)) == 15


async def test_a_duplicate_passenger_is_refused(api: Api) -> None:
    alice = await register(api.client)
    number = make_id_number()
    assert (await add(api, alice, number)).status == 201
    resp = await add(api, alice, number.lower(), name="Another name")
    assert resp.status == 409
    assert (await resp.json())["fields"]["reason"] == "duplicate_passenger"
    # The holder's own number is on the list already, too.
    holder = await api.client.get("/v1/passengers", headers=alice["headers"])
    assert len((await holder.json())["passengers"]) == 2


async def test_the_same_person_may_be_on_two_accounts_lists(api: Api) -> None:
    alice, bob = await register(api.client), await register(api.client)
    number = make_id_number()
    assert (await add(api, alice, number)).status == 201
    assert (await add(api, bob, number)).status == 201


async def test_invalid_input_is_refused_with_field_errors(api: Api) -> None:
    alice = await register(api.client)
    good = make_id_number()
    bad_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    resp = await add(api, alice, bad_check)
    assert resp.status == 422
    body = await resp.json()
    assert body["code"] == "validation_failed"
    assert [e["field"] for e in body["fields"]["errors"]] == ["id_number"]

    resp = await add(api, alice, make_id_number(dt.date(1990, 1, 1)), kind="child")
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["fields"]["errors"]] == ["kind"]

    resp = await api.client.post(
        "/v1/passengers",
        json={"name": "", "id_number": "12345", "kind": "pet", "extra": 1},
        headers=alice["headers"],
    )
    assert resp.status == 422
    fields = sorted(e["field"] for e in (await resp.json())["fields"]["errors"])
    assert fields == ["extra", "id_number", "kind", "name"]
    assert len(await listed(api, alice)) == 1


async def test_another_accounts_passenger_is_invisible(api: Api) -> None:
    alice, mallory = await register(api.client), await register(api.client)
    bob = await (await add(api, alice, make_id_number())).json()
    resp = await api.client.delete(f"/v1/passengers/{bob['id']}", headers=mallory["headers"])
    assert resp.status == 404
    assert [p["is_holder"] for p in await listed(api, mallory)] == [True]
    assert [p["id"] for p in await listed(api, alice)][1:] == [bob["id"]]


async def test_only_signed_in_citizens(api: Api) -> None:
    assert (await api.client.get("/v1/passengers")).status == 401
    staff = await api.client.get("/v1/passengers", headers=api.staff_headers("hosp-a"))
    assert staff.status == 403


async def test_a_hold_resolves_only_the_accounts_own_passengers_to_id_hmacs(api: Api) -> None:
    alice, mallory = await register(api.client), await register(api.client)
    number = make_id_number()
    bob = await (await add(api, alice, number)).json()
    eve = await (await add(api, mallory, make_id_number())).json()
    async with api.services.pool.acquire() as conn:
        got = await passenger_store.person_hmacs(
            conn, alice["account_id"], [bob["id"], eve["id"], "pa-0000000000000000"]
        )
    assert got == {bob["id"]: id_hmac(number, api.services.id_hmac_key)}


async def test_a_removed_passenger_may_be_added_again(api: Api) -> None:
    alice = await register(api.client)
    number = make_id_number()
    first = await (await add(api, alice, number)).json()
    await api.client.delete(f"/v1/passengers/{first['id']}", headers=alice["headers"])
    again = await add(api, alice, number)
    assert again.status == 201
    assert (await again.json())["id"] != first["id"]
