"""A series survives a Redis loss: rebuilt from Postgres, still confirmed as a whole."""

from __future__ import annotations

from reservation.workflows.rebuild_inventory import (
    drain_outbox,
    rebuild_inventory,
    reconcile_inventory,
)
from tests.api_fixture import Api
from tests.vaccine.support import (
    Site,
    book_ok,
    booked_and_confirmed,
    citizen,
    confirm,
    two_dose_slots,
)


async def test_series_after_a_rebuild(api: Api, site: Site) -> None:
    first, second = await two_dose_slots(api, site)
    alice, bob = await citizen(api), await citizen(api, "李四")
    paid = await booked_and_confirmed(api, alice, [first, second])
    unpaid = await book_ok(api, bob, [first, second])
    await drain_outbox(api.services)

    # Redis loses everything of this deployment.
    redis = api.services.redis
    keys = [k async for k in redis.scan_iter(match=f"{api.services.keys.prefix}:*", count=1000)]
    for key in keys:
        await redis.unlink(key)
    resp = await confirm(api, bob, unpaid["id"])
    assert resp.status == 503  # sales closed until the rebuild

    report = await rebuild_inventory(api.services)
    assert report.oversold_slots == []
    assert await reconcile_inventory(api.services) == []
    assert await api.services.slots.available([first, second]) == {first: 8, second: 8}

    # The unpaid series is confirmed as a whole; the paid one is still paid.
    resp = await confirm(api, bob, unpaid["id"])
    assert resp.status == 200, await resp.text()
    assert [a["state"] for a in (await resp.json())["appointments"]] == ["confirmed"] * 2
    resp = await confirm(api, alice, paid["id"])
    assert resp.status == 200, await resp.text()
    assert await api.services.slots.available([first, second]) == {first: 8, second: 8}
