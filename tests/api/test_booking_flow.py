"""The slot booking path end to end: publish, list, hold, confirm, cancel, read back."""

from __future__ import annotations

from reservation.workers.persister import Persister
from tests.api_fixture import Api
from tests.helpers import register


async def test_publish_hold_confirm_is_committed_in_postgres(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=2)])
    citizen = await register(api.client)

    listed = await (await api.client.get("/v1/slots", params={"provider_id": "hosp-a"})).json()
    assert [s["available"] for s in listed["slots"]] == [2]

    resp = await api.client.post(
        "/v1/bookings",
        json={"slot_id": slot["id"]},
        headers={**citizen["headers"], "Idempotency-Key": "k1"},
    )
    assert resp.status == 201, await resp.text()
    hold = await resp.json()
    assert hold["state"] == "held"

    resp = await api.client.post(f"/v1/bookings/{hold['id']}/confirm", headers=citizen["headers"])
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "confirmed"

    # Durability contract: "confirmed" was said only after the row was committed.
    async with api.services.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT state, account_id FROM bookings WHERE id = $1", hold["id"]
        )
    assert row is not None
    assert row["state"] == "confirmed"
    assert row["account_id"] == citizen["account_id"]

    listed = await (await api.client.get("/v1/slots", params={"provider_id": "hosp-a"})).json()
    assert [s["available"] for s in listed["slots"]] == [1]

    got = await (
        await api.client.get(f"/v1/bookings/{hold['id']}", headers=citizen["headers"])
    ).json()
    assert got["state"] == "confirmed"


async def test_idempotent_retry_returns_the_same_hold(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=3)])
    citizen = await register(api.client)
    headers = {**citizen["headers"], "Idempotency-Key": "same-key"}
    first = await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=headers)
    second = await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=headers)
    assert first.status == 201
    assert second.status == 200
    a, b = await first.json(), await second.json()
    assert a["id"] == b["id"]
    assert b["replay"] is True
    available = await api.services.slots.available([slot["id"]])
    assert available[slot["id"]] == 2


async def test_same_key_for_another_slot_is_refused(api: Api) -> None:
    slots = await api.publish("hosp-a", [api.slot(hours_ahead=24), api.slot(hours_ahead=25)])
    citizen = await register(api.client)
    headers = {**citizen["headers"], "Idempotency-Key": "reused"}
    ok = await api.client.post("/v1/bookings", json={"slot_id": slots[0]["id"]}, headers=headers)
    assert ok.status == 201
    again = await api.client.post("/v1/bookings", json={"slot_id": slots[1]["id"]}, headers=headers)
    assert again.status == 422
    assert (await again.json())["code"] == "idempotency_key_reused"


async def test_one_booking_per_resource_per_day(api: Api) -> None:
    slots = await api.publish("hosp-a", [api.slot(hours_ahead=24), api.slot(hours_ahead=25)])
    citizen = await register(api.client)
    first = await api.client.post(
        "/v1/bookings", json={"slot_id": slots[0]["id"]}, headers=citizen["headers"]
    )
    assert first.status == 201
    second = await api.client.post(
        "/v1/bookings", json={"slot_id": slots[1]["id"]}, headers=citizen["headers"]
    )
    assert second.status == 409
    assert (await second.json())["code"] == "person_limit"
    # After cancelling, the rule no longer applies.
    hold = await first.json()
    cancel = await api.client.post(f"/v1/bookings/{hold['id']}/cancel", headers=citizen["headers"])
    assert cancel.status == 200
    third = await api.client.post(
        "/v1/bookings", json={"slot_id": slots[1]["id"]}, headers=citizen["headers"]
    )
    assert third.status == 201, await third.text()


async def test_cap_on_live_holds_per_account(api: Api) -> None:
    cap = api.services.settings.max_live_holds_per_account
    resources = [{"code": f"dr-{i}", "name": f"Dr {i}"} for i in range(cap + 1)]
    slots = await api.publish(
        "hosp-a", [api.slot(code=f"dr-{i}") for i in range(cap + 1)], resources=resources
    )
    citizen = await register(api.client)
    statuses = []
    for s in slots:
        resp = await api.client.post(
            "/v1/bookings", json={"slot_id": s["id"]}, headers=citizen["headers"]
        )
        statuses.append(resp.status)
    assert statuses == [201] * cap + [429]
    last = await api.client.post(
        "/v1/bookings", json={"slot_id": slots[-1]["id"]}, headers=citizen["headers"]
    )
    assert last.headers.get("Retry-After")
    # The refused hold took nothing from the slot.
    assert (await api.services.slots.available([slots[-1]["id"]]))[slots[-1]["id"]] == 5


async def test_cancel_returns_the_place_exactly_once(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    citizen = await register(api.client)
    hold = await (
        await api.client.post(
            "/v1/bookings", json={"slot_id": slot["id"]}, headers=citizen["headers"]
        )
    ).json()
    for _ in range(3):
        resp = await api.client.post(
            f"/v1/bookings/{hold['id']}/cancel", headers=citizen["headers"]
        )
        assert resp.status == 200
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == 1
    confirm = await api.client.post(
        f"/v1/bookings/{hold['id']}/confirm", headers=citizen["headers"]
    )
    assert confirm.status == 409
    assert (await confirm.json())["code"] == "hold_not_live"


async def test_sold_out_and_not_released(api: Api) -> None:
    [soon, full] = await api.publish(
        "hosp-a",
        [api.slot(release_in_s=3600, hours_ahead=30), api.slot(capacity=1, hours_ahead=31)],
    )
    a, b = await register(api.client), await register(api.client)
    early = await api.client.post(
        "/v1/bookings", json={"slot_id": soon["id"]}, headers=a["headers"]
    )
    assert early.status == 409
    assert (await early.json())["code"] == "not_released"
    assert (
        await api.client.post("/v1/bookings", json={"slot_id": full["id"]}, headers=a["headers"])
    ).status == 201
    late = await api.client.post("/v1/bookings", json={"slot_id": full["id"]}, headers=b["headers"])
    assert late.status == 409
    assert (await late.json())["code"] == "sold_out"
    api.clock.advance(3601)
    assert (
        await api.client.post("/v1/bookings", json={"slot_id": soon["id"]}, headers=b["headers"])
    ).status == 201


async def test_retry_of_a_paid_hold_at_the_cap_is_a_replay(api: Api) -> None:
    cap = api.services.settings.max_live_holds_per_account
    resources = [{"code": f"dr-{i}", "name": f"Dr {i}"} for i in range(cap + 1)]
    slots = await api.publish(
        "hosp-a", [api.slot(code=f"dr-{i}") for i in range(cap + 1)], resources=resources
    )
    citizen = await register(api.client)
    first = {**citizen["headers"], "Idempotency-Key": "paid"}
    paid = await (
        await api.client.post("/v1/bookings", json={"slot_id": slots[0]["id"]}, headers=first)
    ).json()
    assert (
        await api.client.post(f"/v1/bookings/{paid['id']}/confirm", headers=citizen["headers"])
    ).status == 200
    for s in slots[1:]:  # fill the cap with unpaid holds
        assert (
            await api.client.post(
                "/v1/bookings", json={"slot_id": s["id"]}, headers=citizen["headers"]
            )
        ).status == 201
    again = await api.client.post("/v1/bookings", json={"slot_id": slots[0]["id"]}, headers=first)
    assert again.status == 200
    body = await again.json()
    assert (body["id"], body["state"], body["replay"]) == (paid["id"], "confirmed", True)


async def test_booking_reads_the_same_before_and_after_the_persister(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot()])
    citizen = await register(api.client)
    hold = await (
        await api.client.post(
            "/v1/bookings", json={"slot_id": slot["id"]}, headers=citizen["headers"]
        )
    ).json()
    before = await (
        await api.client.get(f"/v1/bookings/{hold['id']}", headers=citizen["headers"])
    ).json()
    persister = Persister(
        api.services, consumer="t", shards=list(range(api.services.settings.shard_count))
    )
    assert (await persister.run_once()).written == 1
    after = await (
        await api.client.get(f"/v1/bookings/{hold['id']}", headers=citizen["headers"])
    ).json()
    assert before == after
    assert before["state"] == "held"
    assert before["resource_name"] == "Dr Li"
    assert before["deadline"].endswith("+08:00")


async def test_the_token_carries_the_person_key(api: Api) -> None:
    citizen = await register(api.client)
    principal = await api.services.auth.authenticate(citizen["headers"]["Authorization"])
    async with api.services.pool.acquire() as conn:
        id_hmac = await conn.fetchval(
            "SELECT id_hmac FROM accounts WHERE id = $1", citizen["account_id"]
        )
    assert (principal.account_id, principal.person) == (citizen["account_id"], id_hmac)
