"""Issue 6: no dose of a series confirmed or cancelled alone through the generic routes
(before and after a rebuild), the vaccine's notification is the one kept, and a dose moves
to another time of the same day at the same site."""

from __future__ import annotations

from typing import Any

from inventory.errors import PersonLimitReached
from inventory.series_engine import SeriesRefused, series_engine
from inventory.slot_engine import shard_from_id
from reservation.workflows.hold_slot import derive_hold_id
from reservation.workflows.rebuild_inventory import (
    drain_outbox,
    rebuild_inventory,
    reconcile_inventory,
)
from reservation.workflows.vaccine_booking import dose_key, series_id_for
from tests.api_fixture import Api
from tests.vaccine.support import (
    Site,
    book,
    book_ok,
    booked_and_confirmed,
    citizen,
    confirm,
    publish,
    row,
    two_dose_slots,
)


async def generic(api: Api, who: dict[str, Any], hold_id: str, action: str) -> Any:
    return await api.client.post(f"/v1/bookings/{hold_id}/{action}", headers=who["headers"])


async def assert_series_hold(resp: Any) -> None:
    assert resp.status == 409, await resp.text()
    body = await resp.json()
    assert body["code"] == "series_hold"
    assert "/v1/vaccine/bookings/" in body["message"]


async def states(api: Api, hold_ids: list[str]) -> list[str | None]:
    out: list[str | None] = []
    for hold_id in hold_ids:
        view = await api.services.slots.read_hold(hold_id)
        out.append(None if view is None else view.state)
    return out


async def wipe_redis(api: Api) -> None:
    redis = api.services.redis
    keys = [k async for k in redis.scan_iter(match=f"{api.services.keys.prefix}:*", count=1000)]
    for key in keys:
        await redis.unlink(key)


# 1. The generic routes refuse a dose of a series ---------------------------------------
async def test_generic_cancel_refuses_a_confirmed_dose(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [first, second])
    ids = [a["id"] for a in done["appointments"]]
    for hold_id in ids:
        await assert_series_hold(await generic(api, alice, hold_id, "cancel"))
    assert await states(api, ids) == ["confirmed", "confirmed"]
    assert await api.services.slots.available([first, second]) == {first: 9, second: 9}
    # The vaccine route cancels the whole series.
    resp = await api.client.post(
        f"/v1/vaccine/bookings/{done['id']}/cancel", headers=alice["headers"]
    )
    assert resp.status == 200, await resp.text()
    assert await states(api, ids) == ["cancelled", "cancelled"]


async def test_generic_routes_refuse_an_unpaid_dose(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    held = await book_ok(api, alice, [first, second])
    ids = [a["id"] for a in held["appointments"]]
    for hold_id in ids:
        await assert_series_hold(await generic(api, alice, hold_id, "confirm"))
        await assert_series_hold(await generic(api, alice, hold_id, "cancel"))
    assert await states(api, ids) == ["held", "held"]
    assert await api.services.slots.available([first, second]) == {first: 9, second: 9}


async def test_stranger_still_learns_nothing(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice, mallory = await citizen(api), await citizen(api, "王五")
    held = await book_ok(api, alice, [first, second])
    hold_id = held["appointments"][0]["id"]
    for action in ("confirm", "cancel"):
        resp = await generic(api, mallory, hold_id, action)
        assert resp.status in (403, 404), await resp.text()
        assert (await resp.json())["code"] != "series_hold"


# 2. ... and still after a rebuild from Postgres ----------------------------------------
async def test_rebuild_restores_series_membership(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice, bob = await citizen(api), await citizen(api, "李四")
    paid = await booked_and_confirmed(api, alice, [first, second])
    unpaid = await book_ok(api, bob, [first, second])
    await drain_outbox(api.services)
    await wipe_redis(api)
    await rebuild_inventory(api.services)
    assert await reconcile_inventory(api.services) == []

    for body in (paid, unpaid):
        for appt in body["appointments"]:
            shard = shard_from_id(appt["id"])
            key = api.services.keys.hold(shard, appt["id"])
            assert await api.services.redis.hget(key, "series") == body["id"]
    unpaid_ids = [a["id"] for a in unpaid["appointments"]]
    for hold_id in unpaid_ids:
        await assert_series_hold(await generic(api, bob, hold_id, "confirm"))
        await assert_series_hold(await generic(api, bob, hold_id, "cancel"))
    for appt in paid["appointments"]:
        await assert_series_hold(await generic(api, alice, appt["id"], "cancel"))
    assert await states(api, unpaid_ids) == ["held", "held"]
    assert await api.services.slots.available([first, second]) == {first: 8, second: 8}
    # The whole series is still confirmed through the vaccine route.
    resp = await confirm(api, bob, unpaid["id"])
    assert resp.status == 200, await resp.text()
    assert await states(api, unpaid_ids) == ["confirmed", "confirmed"]


# 3. The vaccine's notification wins, whoever commits first ------------------------------
async def notes(api: Api, hold_id: str) -> dict[str, dict[str, Any]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT dedupe_key, payload FROM notifications WHERE subject = $1",
            f"booking:{hold_id}",
        )
    return {r["dedupe_key"].rsplit(":", 1)[1]: dict(r["payload"]) for r in rows}


async def test_vaccine_notes_win_when_the_persister_runs_first(api: Api, site: Site) -> None:
    """The persister writes the series' events before the vaccine workflow commits (the
    workflow's Lua call is replayed under the same Idempotency-Key after it): the held and
    confirmed notes are still the vaccine's, with dose and person."""
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    account = alice["account_id"]
    key = "race-1"
    series_id = series_id_for(api.services, account, key)
    hold_ids = [
        derive_hold_id(api.services, slot, account, dose_key(key, dose))
        for dose, slot in ((1, first), (2, second))
    ]
    async with api.services.pool.acquire() as conn:
        person = await conn.fetchval("SELECT id_hmac FROM accounts WHERE id = $1", account)
    engine = series_engine(api.services.slots)
    now = api.services.clock()
    await engine.hold(
        slot_ids=[first, second],
        hold_ids=hold_ids,
        account_id=account,
        person=person,
        series_id=series_id,
        idempotency_key=key,
        now_ms=now,
        deadline_ms=now + api.services.settings.slot_hold_seconds * 1000,
    )
    await drain_outbox(api.services)  # the persister first
    resp = await book(api, alice, [first, second], key=key)
    assert resp.status == 200, await resp.text()  # the Lua call was a replay
    held = await resp.json()
    assert held["id"] == series_id
    assert [a["id"] for a in held["appointments"]] == hold_ids

    await engine.confirm(
        hold_ids=hold_ids, account_id=account, series_id=series_id, now_ms=api.services.clock()
    )
    await drain_outbox(api.services)  # again the persister first
    resp = await confirm(api, alice, series_id)
    assert resp.status == 200, await resp.text()
    await drain_outbox(api.services)
    for dose, hold_id in enumerate(hold_ids, start=1):
        found = await notes(api, hold_id)
        assert set(found) == {"held", "confirmed"}
        assert found["held"]["dose"] == dose and found["held"]["person"]
        assert found["confirmed"]["dose"] == dose
        assert found["confirmed"]["verification_code"]


async def test_cancel_notes_are_the_vaccines(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [first, second])
    resp = await api.client.post(
        f"/v1/vaccine/bookings/{done['id']}/cancel", headers=alice["headers"]
    )
    assert resp.status == 200, await resp.text()
    await drain_outbox(api.services)
    for appt in done["appointments"]:
        found = await notes(api, appt["id"])
        assert found["cancelled"]["dose"] == appt["dose"]


async def test_cancel_retried_after_a_crash_still_notes_it(api: Api, site: Site) -> None:
    """The inventory half of a cancel happened (last dose first) and the persister wrote
    it, but the workflow died before its commit: the retry records the cancellation and
    its notes (the persister records none for a vaccine hold)."""
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [first, second])
    for appt in reversed(done["appointments"]):
        await api.services.slots.release(
            hold_id=appt["id"],
            slot_id=appt["slot_id"],
            account_id=alice["account_id"],
            now_ms=api.services.clock(),
            state="cancelled",
            reason="citizen",
        )
    await drain_outbox(api.services)
    resp = await api.client.post(
        f"/v1/vaccine/bookings/{done['id']}/cancel", headers=alice["headers"]
    )
    assert resp.status == 200, await resp.text()
    assert [a["state"] for a in (await resp.json())["appointments"]] == ["cancelled"] * 2
    for appt in done["appointments"]:
        found = await notes(api, appt["id"])
        assert found["cancelled"]["dose"] == appt["dose"]


# 4. Moving a dose within its day at its site -------------------------------------------
async def test_move_to_another_time_the_same_day(api: Api, site: Site) -> None:
    morning, noon, d2 = (
        s["id"]
        for s in await publish(
            api,
            site,
            [
                row(api, days_ahead=2, start="09:00", end="10:00"),
                row(api, days_ahead=2, start="11:00", end="12:00"),
                row(api, days_ahead=30),
            ],
        )
    )
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [morning, d2])
    old1 = done["appointments"][0]
    resp = await api.client.post(
        f"/v1/vaccine/appointments/{old1['id']}/reschedule",
        json={"slot_id": noon},
        headers={**alice["headers"], "Idempotency-Key": "same-day"},
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    new_id = body["moved"][old1["id"]]
    live = [a for a in body["appointments"] if a["state"] == "confirmed"]
    assert [(a["dose"], a["slot_id"]) for a in live] == [(1, noon), (2, d2)]
    assert await api.services.slots.available([morning, noon, d2]) == {
        morning: 10,
        noon: 9,
        d2: 9,
    }
    # The day's "one booking per person" entry now names the new hold: the person still
    # cannot take a second place that day, and the old place is free for others.
    shard = shard_from_id(new_id)
    meta = await api.services.slots.slot_meta(noon)
    pday = api.services.keys.person_day(shard, meta.resource_id, meta.day)
    assert set((await api.services.redis.hgetall(pday)).values()) == {new_id}
    again = await book(api, alice, [morning, d2], key="second-series")
    assert again.status == 409, await again.text()
    bob = await citizen(api, "李四")
    await booked_and_confirmed(api, bob, [morning, d2])


async def test_move_within_the_day_refused_onto_a_second_dose(api: Api, site: Site) -> None:
    """The exception is for the moved dose's own entry only: a dose never lands on a day
    another live booking of that person holds at the site."""
    first, second = await two_dose_slots(api, site)
    alice = await citizen(api)
    done = await booked_and_confirmed(api, alice, [first, second])
    engine = series_engine(api.services.slots)
    person = await api.services.slots.read_hold(done["appointments"][0]["id"])
    assert person is not None
    other = await publish(api, site, [row(api, days_ahead=1, start="15:00", end="16:00")])
    # Dose 2 "moved" onto dose 1's day, replacing only its own entry: refused.
    try:
        await engine.hold(
            slot_ids=[other[0]["id"]],
            hold_ids=[f"h{shard_from_id(first)}-{'ab' * 10}"],
            account_id=alice["account_id"],
            person=person.person,
            series_id=done["id"],
            idempotency_key="x",
            now_ms=api.services.clock(),
            deadline_ms=api.services.clock() + 60_000,
            replaces=[done["appointments"][1]["id"]],
        )
    except SeriesRefused as refused:
        assert isinstance(refused.cause, PersonLimitReached)
    else:
        raise AssertionError("a second place on one day was held")
