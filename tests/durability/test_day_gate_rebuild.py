"""The hospital day gates come back with a rebuild, and the reconciliation checks them.

A Redis loss used to leave every patient's day gate empty after the rebuild: "one
registration per department per day" and "N departments per day" then rested on the
non-atomic Postgres check alone until new registrations re-made the gates.
"""

from __future__ import annotations

import datetime as dt

from inventory.hospital_gate import day_gate_key
from reservation.domain.clock import to_ms
from reservation.domain.hospital import day_end
from reservation.workflows.rebuild_inventory import (
    drain_outbox,
    rebuild_inventory,
    reconcile_inventory,
)
from tests.api_fixture import Api
from tests.durability.test_rebuild import forget_everything, guarded
from tests.hospital.support import book, book_and_pay, citizen, publish, row, slots_of, today

__all__ = ["guarded"]  # the fixture, used by name


async def test_day_gates_are_rebuilt_from_the_registrations(guarded: Api) -> None:
    api = guarded
    day = today(api) + dt.timedelta(days=2)
    await publish(
        api,
        [
            row(day=day, doctor="dr-li", department="cardio"),
            row(day=day, doctor="dr-wang", department="cardio"),
            row(day=day, doctor="dr-zhao", department="derma"),
            row(day=day, doctor="dr-sun", department="ortho"),
        ],
    )
    who = await citizen(api)
    status, held = await book(api, who["headers"], (await slots_of(api, "dr-li", day))[0]["id"])
    assert status == 201
    paid = await book_and_pay(api, who["headers"], (await slots_of(api, "dr-zhao", day))[0]["id"])
    gone = await book_and_pay(api, who["headers"], (await slots_of(api, "dr-sun", day))[0]["id"])
    resp = await api.client.post(
        f"/v1/hospital/registrations/{gone['id']}/cancel", headers=who["headers"]
    )
    assert resp.status == 200
    await drain_outbox(api.services)
    async with api.services.pool.acquire() as conn:
        person, deadline = await conn.fetchrow(
            "SELECT person_hmac, hold_deadline FROM hospital_registrations WHERE id = $1",
            held["id"],
        )
    key = day_gate_key(api.services.keys, person, day.isoformat())
    before = await api.services.redis.hgetall(key)
    assert len(before) == 2  # cardio (held) and derma (paid); ortho was cancelled

    await forget_everything(api)
    report = await rebuild_inventory(api.services)
    assert report.day_gates == 1
    after = await api.services.redis.hgetall(key)
    assert sorted(after.values()) == sorted(
        [f"{held['id']}|{to_ms(deadline)}", f"{paid['id']}|{to_ms(day_end(day))}"]
    )
    assert after == before
    assert await reconcile_inventory(api.services) == []
    # The restored gate refuses a second cardiology registration that day.
    status, body = await book(api, who["headers"], (await slots_of(api, "dr-wang", day))[0]["id"])
    assert (status, body["code"]) == (409, "department_limit")

    # A gate Redis lost again is reported, department by department.
    await api.services.redis.delete(key)
    kinds = {(d.kind, d.redis) for d in await reconcile_inventory(api.services)}
    assert kinds == {("day_gate", "nothing")}
