"""Rate limits on the hold routes (slots and train orders): 429 with Retry-After per
account, per passenger ID and per client address (behind a trusted proxy), on real Redis."""

from __future__ import annotations

import datetime as dt

import pytest

from reservation.domain.clock import CHINA
from reservation.settings import Settings
from tests.api_fixture import Api
from tests.fairness.queue_support import citizens, hold
from tests.trains import test_orders_api as orders


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # One call per second, bursts of 2; the proxy at 127.0.0.1 is trusted, so the
    # address is X-Forwarded-For's, and loopback is not exempt.
    return settings.replace(
        train_cache_ms=0,
        max_live_holds_per_account=10,
        hold_rate_per_account=60,
        hold_burst_per_account=2,
        hold_rate_per_person=60,
        hold_burst_per_person=2,
        hold_rate_per_address=60,
        hold_burst_per_address=2,
        trusted_proxies=("127.0.0.1/32",),
        rate_limit_exempt=(),
    )


def hours_to_morning_after_next(api: Api) -> float:
    """Hours from the test's clock to 09:00 China time the day after tomorrow: slots a few
    hours after it share one local day whatever the time of day the test runs (with
    `24 + i` hours, a run after 22:00 put the third slot on the next day)."""
    local = api.clock.now.astimezone(CHINA)
    morning = (local + dt.timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    return (morning - local).total_seconds() / 3600


async def test_an_account_is_limited_and_told_when_to_retry(api: Api) -> None:
    start = hours_to_morning_after_next(api)
    slots = await api.publish("hosp-a", [api.slot(hours_ahead=start + i) for i in range(3)])
    [(account_id, headers)] = await citizens(api, 1)
    assert (await hold(api, slots[0]["id"], headers, key="k1")).status == 201
    second = await hold(api, slots[1]["id"], headers, key="k2")
    assert second.status == 409  # one per resource per day: refused, but counted
    third = await hold(api, slots[2]["id"], headers, key="k3")
    assert third.status == 429
    assert third.headers["Retry-After"] == "1"
    body = await third.json()
    assert body["code"] == "rate_limited" and body["fields"]["retry_after_ms"] == 1000
    # A refused hold takes no place under the account's cap: only the live one counts.
    cap_key = api.services.keys.account_holds(account_id)
    assert await api.services.redis.zcard(cap_key) == 1
    # A retry of the hold that exists books nothing: answered, not limited.
    again = await hold(api, slots[0]["id"], headers, key="k1")
    assert again.status == 200 and (await again.json())["replay"] is True
    api.clock.advance(1)
    assert (await hold(api, slots[2]["id"], headers, key="k3")).status == 409


async def test_a_client_address_is_limited_behind_a_trusted_proxy(api: Api) -> None:
    slots = await api.publish("hosp-a", [api.slot(capacity=10)])
    people = await citizens(api, 5)

    async def from_address(i: int, forwarded: str) -> int:
        headers = {**people[i][1], "X-Forwarded-For": forwarded}
        status: int = (await hold(api, slots[0]["id"], headers)).status
        return status

    # Whatever the client puts on the left is not believed: the proxy's hop counts.
    assert await from_address(0, "203.0.113.7") == 201
    assert await from_address(1, "198.51.100.1, 203.0.113.7") == 201
    assert await from_address(2, "203.0.113.7") == 429
    assert await from_address(3, "203.0.113.8") == 201
    # Without a trusted proxy the header is ignored: the peer (loopback here) counts.
    api.services.waiting_room.trusted_proxies = ()
    assert await from_address(4, "203.0.113.7") == 201


async def test_a_train_order_is_limited_per_account_and_per_passenger(api: Api) -> None:
    day = await orders.setup(api)
    run = f"G1-{day:%Y%m%d}"
    me = await orders.citizen(api, extra=3)
    key = iter(range(100))

    async def attempt(pax: list[str]) -> tuple[int, str | None]:
        headers = {**me["headers"], "Idempotency-Key": f"o{next(key)}"}
        resp = await api.client.post(
            "/v1/orders", json=orders.order_body(run, pax), headers=headers
        )
        if resp.status != 429:
            return resp.status, None
        assert resp.headers["Retry-After"] == "1"
        return 429, (await resp.json())["fields"]["scope"]

    assert await attempt(me["pax"][:1]) == (201, None)
    assert await attempt(me["pax"][1:2]) == (201, None)
    status, _ = await attempt(me["pax"][2:3])
    assert status == 429  # the burst of 2 is spent (account and address alike)

    # The passenger's own budget, alone: a refused order still spends it.
    api.clock.advance(10)
    limits = api.services.waiting_room.limits
    limits["acct"] = limits["ip"] = None
    assert (await attempt(me["pax"][3:4]))[0] == 201
    assert (await attempt(me["pax"][3:4]))[0] == 409  # one ticket per ID per run: counted
    assert await attempt(me["pax"][3:4]) == (429, "person")
    assert (await attempt(me["pax"][2:3]))[0] == 201  # another passenger is not held back
