"""Train orders: the workflows that commit tickets before answering record the
notification in that commit, the persister's replay of the seat events adds nothing, a
refund is one `refunded` notification (not also `cancelled`), a 改签 one `changed`."""

from __future__ import annotations

import pytest

from reservation.settings import Settings
from tests.api_fixture import Api
from tests.notifications.support import notes, persister, reminders
from tests.trains.test_orders_api import call, citizen, order_body, setup


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(train_cache_ms=0)


async def test_pay_refund_and_change_are_told_once_each(api: Api) -> None:
    day = await setup(api, days_ahead=3)
    g1, g3 = f"G1-{day:%Y%m%d}", f"G3-{day:%Y%m%d}"
    me = await citizen(api, extra=1)
    mine = me["account_id"]

    one = await call(api, "POST", "/v1/orders", me, order_body(g1, me["pax"][:1]), 201, "k1")
    await call(api, "POST", f"/v1/orders/{one['id']}/pay", me)
    # Recorded by the pay path itself, in the commit before its answer: no persister has
    # run yet (the hold path leaves `held` to the persister: it is the rush's hot path).
    assert [k for k, _, _ in await notes(api, mine)] == ["confirmed"]
    [reminder] = await reminders(api)
    assert reminder["subject"] == f"order:{one['id']}"

    await persister(api).run_once()  # held + confirmed seat events: only `held` is new
    assert [k for k, _, _ in await notes(api, mine)] == ["confirmed", "held"]
    before = await notes(api, mine)
    await persister(api).run_once()
    assert await notes(api, mine) == before

    await call(api, "POST", f"/v1/orders/{one['id']}/refund", me)
    await persister(api).run_once()  # the seat's `cancelled` event of a paid order
    kinds = [k for k, _, _ in await notes(api, mine)]
    assert kinds == ["confirmed", "held", "refunded"]
    [reminder] = await reminders(api)
    assert reminder["cancelled_at"] is not None

    two = await call(api, "POST", "/v1/orders", me, order_body(g1, me["pax"][1:2]), 201, "k2")
    await call(api, "POST", f"/v1/orders/{two['id']}/pay", me)
    moved = await call(api, "POST", f"/v1/orders/{two['id']}/change", me, {"run_id": g3})
    await persister(api).run_once()
    await persister(api).run_once()
    told = [(k, s) for k, s, _ in await notes(api, mine)][3:]
    assert sorted(told) == sorted(
        [
            ("held", f"order:{two['id']}"),
            ("confirmed", f"order:{two['id']}"),
            ("changed", f"order:{two['id']}"),
        ]
    )
    live = {r["subject"]: r["cancelled_at"] for r in await reminders(api)}
    assert live[f"order:{two['id']}"] is not None  # the old order's reminder ended
    assert live[f"order:{moved['id']}"] is None  # the new train's reminder is set


async def test_cancelling_an_unpaid_order_is_told(api: Api) -> None:
    day = await setup(api)
    me = await citizen(api)
    held = await call(
        api, "POST", "/v1/orders", me, order_body(f"G1-{day:%Y%m%d}", me["pax"][:1]), 201, "k"
    )
    await call(api, "POST", f"/v1/orders/{held['id']}/cancel", me)
    await persister(api).run_once()
    assert sorted(k for k, _, _ in await notes(api, me["account_id"])) == ["cancelled", "held"]
    assert await reminders(api) == []
