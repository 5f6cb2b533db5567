"""The inbox over HTTP: newest first, keyset pages, unread count, mark read (own only)."""

from __future__ import annotations

from typing import Any

from tests.api_fixture import Api
from tests.helpers import insert_citizens
from tests.notifications.support import record_plain


async def page(api: Api, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    resp = await api.client.get(
        "/v1/me/notifications", params={k: str(v) for k, v in query.items()}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_pages_newest_first_with_the_unread_count(api: Api) -> None:
    [(me, mine), (other, _)] = await insert_citizens(api, 2)
    ids = await record_plain(api, me, 5)
    await record_plain(api, other, 2)  # never shown to me

    first = await page(api, mine, limit=2)
    assert [n["id"] for n in first["notifications"]] == [ids[4], ids[3]]
    assert first["unread"] == 5
    assert first["next_before"] == ids[3]
    n = first["notifications"][0]
    assert n["kind"] == "confirmed" and n["read_at"] is None
    assert n["payload"] == {"i": 4, "名": "张三"}
    assert n["created_at"].endswith("+08:00")

    second = await page(api, mine, limit=2, before=first["next_before"])
    assert [n["id"] for n in second["notifications"]] == [ids[2], ids[1]]
    last = await page(api, mine, limit=2, before=second["next_before"])
    assert [n["id"] for n in last["notifications"]] == [ids[0]]
    assert last["next_before"] is None


async def test_mark_read_by_ids_and_up_to_an_id(api: Api) -> None:
    [(me, mine), (other, theirs)] = await insert_citizens(api, 2)
    ids = await record_plain(api, me, 4)
    their_ids = await record_plain(api, other, 1)

    resp = await api.client.post(
        "/v1/me/notifications/read", json={"ids": [ids[3], their_ids[0]]}, headers=mine
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"marked": 1, "unread": 3}  # someone else's id: ignored
    assert (await page(api, theirs))["unread"] == 1

    resp = await api.client.post("/v1/me/notifications/read", json={"up_to": ids[1]}, headers=mine)
    assert await resp.json() == {"marked": 2, "unread": 1}
    unread = await page(api, mine, unread="true")
    assert [n["id"] for n in unread["notifications"]] == [ids[2]]
    everything = await page(api, mine)
    assert [n["read_at"] is None for n in everything["notifications"]] == [
        False,
        True,
        False,
        False,
    ]
    # Again: nothing more to mark.
    resp = await api.client.post("/v1/me/notifications/read", json={"ids": [ids[3]]}, headers=mine)
    assert await resp.json() == {"marked": 0, "unread": 1}


async def test_bad_input_is_a_clear_4xx(api: Api) -> None:
    [(_, mine)] = await insert_citizens(api, 1)
    for query in ({"limit": "0"}, {"limit": "101"}, {"before": "x"}, {"color": "red"}):
        resp = await api.client.get("/v1/me/notifications", params=query, headers=mine)
        assert resp.status == 422, query
    resp = await api.client.post("/v1/me/notifications/read", json={}, headers=mine)
    assert resp.status == 422
    assert (await resp.json())["code"] == "validation_failed"
    resp = await api.client.post("/v1/me/notifications/read", json={"ids": ["a"]}, headers=mine)
    assert resp.status == 422
    resp = await api.client.get("/v1/me/notifications")
    assert resp.status == 401
    resp = await api.client.get("/v1/me/notifications", headers=api.staff_headers("hosp-a"))
    assert resp.status == 403
