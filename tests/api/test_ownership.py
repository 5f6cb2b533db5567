"""Every object access checks ownership: citizens, staff of each provider, operators."""

from __future__ import annotations

from tests.api_fixture import Api
from tests.helpers import register


async def test_citizen_cannot_touch_another_citizens_booking(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot()])
    alice, mallory = await register(api.client), await register(api.client)
    hold = await (
        await api.client.post(
            "/v1/bookings", json={"slot_id": slot["id"]}, headers=alice["headers"]
        )
    ).json()
    for method, path in [
        ("GET", f"/v1/bookings/{hold['id']}"),
        ("POST", f"/v1/bookings/{hold['id']}/confirm"),
        ("POST", f"/v1/bookings/{hold['id']}/cancel"),
    ]:
        resp = await api.client.request(method, path, headers=mallory["headers"])
        # 404, not 403: a stranger learns nothing about the id.
        assert resp.status == 404, (method, path)
    listed = await (await api.client.get("/v1/bookings", headers=mallory["headers"])).json()
    assert listed["bookings"] == []
    # Alice's hold is untouched.
    got = await (
        await api.client.get(f"/v1/bookings/{hold['id']}", headers=alice["headers"])
    ).json()
    assert got["state"] == "held"


async def test_staff_are_scoped_to_their_provider(api: Api) -> None:
    slot = api.slot()
    wrong = await api.client.post(
        "/v1/providers/hosp-a/slots",
        json={"resources": [{"code": "dr-li", "name": "Dr Li"}], "slots": [slot]},
        headers=api.staff_headers("hosp-b"),
    )
    assert wrong.status == 403
    assert (await wrong.json())["code"] == "forbidden"
    day = slot["starts_at"][:10]
    view = await api.client.get(
        "/v1/providers/hosp-a/slots", params={"day": day}, headers=api.staff_headers("hosp-b")
    )
    assert view.status == 403
    own = await api.client.get(
        "/v1/providers/hosp-a/slots", params={"day": day}, headers=api.staff_headers("hosp-a")
    )
    assert own.status == 200


async def test_roles_are_kept_apart(api: Api) -> None:
    citizen = await register(api.client)
    # A citizen cannot publish; staff and operators cannot hold as citizens.
    resp = await api.client.post(
        "/v1/providers/hosp-a/slots", json={"slots": [api.slot()]}, headers=citizen["headers"]
    )
    assert resp.status == 403
    [slot] = await api.publish("hosp-a", [api.slot()])
    for headers in (api.staff_headers("hosp-a"), api.operator):
        resp = await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=headers)
        assert resp.status == 403
    # An operator may publish for any provider (e.g. on a provider's behalf, audited later).
    published = await api.client.post(
        "/v1/providers/hosp-b/slots",
        json={"resources": [{"code": "x", "name": "X"}], "slots": [api.slot(code="x")]},
        headers=api.operator,
    )
    assert published.status == 201


async def test_unknown_provider(api: Api) -> None:
    resp = await api.client.get(
        "/v1/providers/nope/slots", params={"day": "2030-01-01"}, headers=api.operator
    )
    assert resp.status == 404


async def test_an_unknown_id_and_someone_elses_look_the_same(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot()])
    alice, mallory = await register(api.client), await register(api.client)
    hold = await (
        await api.client.post(
            "/v1/bookings", json={"slot_id": slot["id"]}, headers=alice["headers"]
        )
    ).json()
    unknown = hold["id"][: hold["id"].index("-") + 1] + "0" * 24
    for action in ("confirm", "cancel"):
        answers = []
        for booking_id in (hold["id"], unknown):
            resp = await api.client.post(
                f"/v1/bookings/{booking_id}/{action}", headers=mallory["headers"]
            )
            body = await resp.json()
            answers.append((resp.status, body["code"], body["message"]))
        assert answers[0] == answers[1], action
        assert answers[0][0] == 404
