"""The filler is safe to crash and runs in ``fairseat serve``'s background process."""

from __future__ import annotations

import asyncio

from reservation.runtime.serve import run_background
from reservation.store import waitlist as store
from reservation.workflows.hold_slot import derive_hold_id
from reservation.workflows.waitlist_common import freeing
from tests.api_fixture import Api
from tests.helpers import register
from tests.waitlist.support import fill, get, post
from tests.waitlist.test_slot_waitlist import available, sold_out_slot, wait_body


async def test_a_crash_between_the_transfer_and_the_commit_is_settled_once(api: Api) -> None:
    slot, [(holder, hold)] = await sold_out_slot(api)
    waiter = await register(api.client)
    order = await post(api, "/v1/waitlist/slots", waiter, wait_body(api, slot), 201)
    await post(api, f"/v1/bookings/{hold['id']}/cancel", holder)

    # What a filler that died right after its Lua call leaves: the offer, and the hold.
    shard = int(slot["id"][1:].split("-")[0])
    [piece] = await freeing(api.services).pieces(shard)
    hold_id = derive_hold_id(
        api.services, slot["id"], waiter["account_id"], f"waitlist:{order['id']}"
    )
    async with api.services.pool.acquire() as conn:
        await store.set_offer(conn, order["id"], hold_id, 0)
    await freeing(api.services).transfer_slot(
        api.services.slots,
        piece_id=piece.piece_id,
        slot_id=slot["id"],
        hold_id=hold_id,
        account_id=waiter["account_id"],
        person=await person_of(api, waiter["account_id"]),
        deadline_ms=api.clock.now_ms + 600_000,
        order_id=order["id"],
        now_ms=api.clock.now_ms,
    )

    report = await fill(api)
    assert report.fulfilled == 1
    mine = await get(api, f"/v1/waitlist/{order['id']}", waiter)
    assert mine["state"] == "fulfilled" and mine["hold_id"] == hold_id
    assert (await fill(api)).fulfilled == 0  # replays change nothing
    assert await available(api, slot["id"]) == 0
    assert await freeing(api.services).pieces(shard) == []


async def person_of(api: Api, account_id: str) -> str:
    async with api.services.pool.acquire() as conn:
        value = await conn.fetchval("SELECT id_hmac FROM accounts WHERE id = $1", account_id)
    return str(value)


async def test_the_background_process_runs_the_filler(api: Api) -> None:
    slot, [(holder, hold)] = await sold_out_slot(api)
    waiter = await register(api.client)
    order = await post(api, "/v1/waitlist/slots", waiter, wait_body(api, slot), 201)
    await post(api, f"/v1/bookings/{hold['id']}/cancel", holder)
    stop = asyncio.Event()
    settings = api.services.settings.replace(waitlist_filler_interval_ms=50)
    task = asyncio.create_task(run_background(settings, stop=stop, which=("waitlist",)))
    try:
        async with asyncio.timeout(60):  # a bound for a hung worker, not a timing claim
            while (await get(api, f"/v1/waitlist/{order['id']}", waiter))["state"] == "waiting":
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert (await get(api, f"/v1/waitlist/{order['id']}", waiter))["state"] == "fulfilled"
