"""The patient's day gate and the standby handover, at the script level (real Redis)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from inventory.errors import HoldNotLive, PersonLimitReached
from inventory.hospital_gate import DailyDepartmentLimit, DepartmentLimit
from tests.api_fixture import Api
from tests.hospital.support import book_and_pay, citizen, publish, row, slots_of, today

DAY = "2030-01-02"


async def reserve(api: Api, dep: str, hold: str, *, now: int = 1_000, until: int = 10_000) -> bool:
    """``now`` and ``until`` in ms after the test clock's start (keys expire in real time)."""
    base = api.clock.now_ms
    return await api.services.hospital.reserve_day(
        person="p1",
        day=DAY,
        department_id=dep,
        hold_id=hold,
        now_ms=base + now,
        until_ms=base + until,
        max_departments=3,
    )


async def test_gate_counts_departments_and_refuses_a_second_in_one(api: Api) -> None:
    assert await reserve(api, "cardio", "h1") is True
    assert await reserve(api, "cardio", "h1") is False  # a retry
    with pytest.raises(DepartmentLimit):
        await reserve(api, "cardio", "h2")
    assert await reserve(api, "derma", "h3")
    assert await reserve(api, "ortho", "h4")
    with pytest.raises(DailyDepartmentLimit):
        await reserve(api, "neuro", "h5")
    await api.services.hospital.release_day(
        person="p1", day=DAY, department_id="ortho", hold_id="x"
    )
    with pytest.raises(DailyDepartmentLimit):  # another hold's id releases nothing
        await reserve(api, "neuro", "h5")
    await api.services.hospital.release_day(
        person="p1", day=DAY, department_id="ortho", hold_id="h4"
    )
    assert await reserve(api, "neuro", "h5")


async def test_entries_past_their_deadline_stop_counting_and_confirm_extends(api: Api) -> None:
    assert await reserve(api, "cardio", "h1", until=5_000)
    assert await reserve(api, "cardio", "h1", now=2_000, until=50_000) is False  # extended
    with pytest.raises(DepartmentLimit):
        await reserve(api, "cardio", "h2", now=20_000)
    assert await reserve(api, "cardio", "h2", now=60_000, until=70_000)


async def test_concurrent_attempts_in_one_department_only_one_counts(api: Api) -> None:
    results = await asyncio.gather(
        *(reserve(api, "cardio", f"h{i}") for i in range(20)), return_exceptions=True
    )
    assert sum(r is True for r in results) == 1
    assert sum(isinstance(r, DepartmentLimit) for r in results) == 19


async def test_handover_moves_the_place_without_touching_stock(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    await publish(api, [row(day=day, start="08:00", end="09:00", capacity=1, counter=0)])
    slot, second = await slots_of(api, "dr-li", day)
    who = await citizen(api)
    reg = await book_and_pay(api, who["headers"], slot["id"])
    engine = api.services.slots
    new_id = reg["id"].split("-")[0] + "-" + "ab" * 12
    kwargs = {
        "old_hold_id": reg["id"],
        "slot_id": slot["id"],
        "reason": "citizen",
        "new_hold_id": new_id,
        "new_account_id": "a-other",
        "new_person": "p-other",
        "deadline_ms": api.clock.now_ms + 60_000,
        "idempotency_key": "standby-1",
        "now_ms": api.clock.now_ms,
    }
    done = await api.services.hospital.handover(**kwargs)
    assert done.replay is False
    assert (await engine.available([slot["id"]]))[slot["id"]] == 0
    old = await engine.read_hold(reg["id"])
    new = await engine.read_hold(new_id)
    assert old is not None and old.state == "cancelled"
    assert new is not None and (new.state, new.account_id) == ("held", "a-other")
    again = await api.services.hospital.handover(**kwargs)
    assert again.replay is True
    # the old hold has ended: it cannot be handed over to someone else again
    with pytest.raises(HoldNotLive):
        await api.services.hospital.handover(**{**kwargs, "new_hold_id": new_id[:-2] + "cd"})
    # a person who already holds this doctor that day cannot receive another place
    other = await book_and_pay(api, (await citizen(api))["headers"], second["id"])
    with pytest.raises(PersonLimitReached):
        await api.services.hospital.handover(
            **{
                **kwargs,
                "old_hold_id": other["id"],
                "slot_id": second["id"],
                "new_hold_id": other["id"].split("-")[0] + "-" + "ef" * 12,
            }
        )
    assert (await engine.read_hold(other["id"])) is not None
    assert (await engine.read_hold(other["id"])).state == "confirmed"  # type: ignore[union-attr]
