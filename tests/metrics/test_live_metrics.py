"""The live metrics of issue 7 on real Redis and Postgres: queue joins and admissions,
people waiting, admitted-but-unused places, waitlist depth and outcomes, and the
remaining stock of watched units, each read from ``/metrics`` after the action (one
sampler pass in between, as the background process does every few seconds), and the
same figures as JSON on ``GET /v1/operator/live``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reservation.fairness.waiting_room_rules import Sale
from reservation.metrics import Metrics
from reservation.settings import Settings, SettingsError
from reservation.store import sales as sale_store
from reservation.workers.stock_sampler import StockSampler
from tests.api_fixture import Api
from tests.fairness.queue_support import citizens, hold, join, open_the_sale, poll, queued_sale
from tests.helpers import register
from tests.trains import test_orders_api as orders
from tests.waitlist.support import fill, post
from tests.waitlist.test_slot_waitlist import sold_out_slot, wait_body

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(api: Api) -> Samples:
    resp = await api.client.get("/metrics")
    assert resp.status == 200
    out: Samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def stock(samples: Samples, unit: str, seat_class: str = "", span: str = "places") -> float | None:
    return value(samples, "fairseat_stock_remaining", unit=unit, seat_class=seat_class, span=span)


def sampler(api: Api, **changes: Any) -> StockSampler:
    """A sampler on the app's own clients and metrics, with settings changed."""
    settings = api.services.settings.replace(**changes)
    return StockSampler(dataclasses.replace(api.services, settings=settings))


async def live(api: Api) -> dict[str, Any]:
    resp = await api.client.get("/v1/operator/live", headers=api.operator)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_queue_joins_admissions_waiting_and_unused_places(api: Api) -> None:
    sale, [slot] = await queued_sale(api, capacity=3)
    sale_id = sale["sale_id"]
    s = sampler(api)
    people = await citizens(api, 5)
    for _, headers in people:
        await join(api, sale_id, headers)
    await join(api, sale_id, people[0][1], status=200)  # a repeated join is not counted
    await s.sample()
    m = await scrape(api)
    assert value(m, "fairseat_queue_joins_total", sale=sale_id) == 5
    assert value(m, "fairseat_queue_admissions_total", sale=sale_id) == 0
    assert value(m, "fairseat_queue_waiting", sale=sale_id) == 5
    assert value(m, "fairseat_queue_admitted_unused", sale=sale_id) == 0
    # The slot sale's own inventory is watched without any setting.
    unit = f"sale:{sale_id}"
    assert value(m, "fairseat_stock_remaining", unit=unit, seat_class="", span="places") == 3

    open_the_sale(api)
    states = [await poll(api, sale_id, h) for _, h in people]
    admitted = [i for i, st in enumerate(states) if st["state"] == "admitted"]
    assert len(admitted) == 3
    await s.sample()
    m = await scrape(api)
    assert value(m, "fairseat_queue_admissions_total", sale=sale_id) == 3
    assert value(m, "fairseat_queue_waiting", sale=sale_id) == 2
    assert value(m, "fairseat_queue_admitted_unused", sale=sale_id) == 3
    assert value(m, "fairseat_queue_remaining", sale=sale_id) == 3

    # One admitted person holds: one admission used, one place fewer.
    first = admitted[0]
    resp = await hold(api, slot["id"], people[first][1], states[first]["queue_token"])
    assert resp.status == 201, await resp.text()
    await s.sample()
    m = await scrape(api)
    assert value(m, "fairseat_queue_admitted_unused", sale=sale_id) == 2
    assert value(m, "fairseat_stock_remaining", unit=unit, seat_class="", span="places") == 2
    assert value(m, "fairseat_queue_joins_total", sale=sale_id) == 5  # unchanged totals
    assert value(m, "fairseat_queue_admissions_total", sale=sale_id) == 3

    # Unused admissions lapse at their deadline even before anyone polls again.
    api.clock.advance(sale["admission"]["admission_ttl_ms"] / 1000)
    await s.sample()
    m = await scrape(api)
    assert value(m, "fairseat_queue_admitted_unused", sale=sale_id) == 0


async def test_counters_follow_the_stored_totals_across_passes_and_restarts(
    api: Api,
) -> None:
    sale, _ = await queued_sale(api, capacity=3)
    for _, headers in await citizens(api, 2):
        await join(api, sale["sale_id"], headers)
    first = sampler(api)
    await first.sample()
    await first.sample()  # a pass with nothing new adds nothing
    m = await scrape(api)
    assert value(m, "fairseat_queue_joins_total", sale=sale["sale_id"]) == 2
    # A restarted background process (fresh metrics) starts at the stored total, so
    # Prometheus sees the series continue, not a reset to 0.
    fresh = Metrics()
    restarted = StockSampler(dataclasses.replace(api.services, metrics=fresh))
    await restarted.sample()
    labels = {"sale": sale["sale_id"]}
    assert fresh.registry.get_sample_value("fairseat_queue_joins_total", labels) == 2


async def test_waitlist_depth_fulfilled_and_ended(api: Api) -> None:
    slot, holders = await sold_out_slot(api, capacity=1)
    s = sampler(api)
    waiters = [await register(api.client) for _ in range(2)]
    orders_ = [
        await post(api, "/v1/waitlist/slots", w, wait_body(api, slot, 60 * (i + 1)), 201, f"w{i}")
        for i, w in enumerate(waiters)
    ]
    await s.sample()
    m = await scrape(api)
    assert value(m, "fairseat_waitlist_waiting", kind="slot") == 2
    assert value(m, "fairseat_waitlist_waiting", kind="train") == 0

    # A freed place goes to the first in line.
    (holder, held) = holders[0]
    await post(api, f"/v1/bookings/{held['id']}/cancel", holder)
    await fill(api)
    await s.sample()
    m = await scrape(api)
    assert value(m, "fairseat_waitlist_waiting", kind="slot") == 1
    assert value(m, "fairseat_waitlist_fulfilled_total", kind="slot") == 1

    # The second reaches its deadline.
    api.clock.advance(121)
    await fill(api)
    await s.sample()
    m = await scrape(api)
    assert value(m, "fairseat_waitlist_waiting", kind="slot") == 0
    assert value(m, "fairseat_waitlist_ended_total", kind="slot", reason="deadline") == 1
    assert value(m, "fairseat_waitlist_fulfilled_total", kind="slot") == 1
    body = await live(api)
    assert body["waitlist"]["ended"]["slot"] == {"deadline": 1}
    assert len(orders_) == 2


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(train_cache_ms=0)


async def test_remaining_stock_of_a_watched_train_run_per_class(api: Api) -> None:
    day = await orders.setup(api)
    g1 = f"G1-{day:%Y%m%d}"
    s = sampler(api, stock_watch=(f"run:{g1}/second",))
    await s.sample()
    m = await scrape(api)
    unit = f"run:{g1}"
    before = await api.services.seats.remaining(g1, "second")
    n = before.nseg
    whole = value(m, "fairseat_stock_remaining", unit=unit, seat_class="second", span="whole_trip")
    tightest = value(
        m, "fairseat_stock_remaining", unit=unit, seat_class="second", span="min_segment"
    )
    assert whole == before[0, n] and whole is not None and whole > 0
    assert tightest == min(before[a, a + 1] for a in range(n))
    # Only the class asked for is watched.
    assert stock(m, unit, "first", "whole_trip") is None

    me = await orders.citizen(api, extra=1)
    await orders.call(api, "POST", "/v1/orders", me, orders.order_body(g1, me["pax"][:2]), 201, "k")
    await s.sample()
    m = await scrape(api)
    assert (
        value(m, "fairseat_stock_remaining", unit=unit, seat_class="second", span="whole_trip")
        == whole - 2
    )
    assert tightest is not None
    assert (
        value(m, "fairseat_stock_remaining", unit=unit, seat_class="second", span="min_segment")
        == tightest - 2
    )
    # A whole run (no class) watches every class it has.
    every = sampler(api, stock_watch=(f"run:{g1}",))
    snap = await every.collect()
    assert {r["seat_class"] for r in snap["stock"]} >= {"first", "second"}


async def test_an_open_queued_train_sale_watches_every_run_of_its_date(api: Api) -> None:
    day = await orders.setup(api)
    now = api.clock()
    # The sale's row alone (its queue is not needed to watch its runs).
    sale = Sale(
        sale_id="sale-train",
        kind="train",
        provider_id=None,
        train_date=day.isoformat(),
        release_ms=now + 60_000,
        window_ends_ms=now + 70_000,
        ends_ms=now + 3_600_000,
        admit_factor=1,
        admission_ttl_ms=120_000,
        stock=100,
        commitment="0" * 64,
        seed_hex=None,
        window_count=None,
        sold_out_notified=False,
    )
    async with api.services.pool.acquire() as conn:
        assert await sale_store.insert_sale(conn, sale, salt=b"s" * 16, created_by="test")
    snap = await sampler(api).sample()
    runs = {r["unit"] for r in snap["stock"]}
    assert runs == {
        f"run:G1-{day:%Y%m%d}",
        f"run:G3-{day:%Y%m%d}",
    }
    assert all(r["unit"].startswith("run:") for r in snap["stock"])
    [q] = snap["sales"]
    assert q["remaining_stock"] == snap["stock"]  # the sale's own runs
    m = await scrape(api)
    assert stock(m, f"run:G1-{day:%Y%m%d}", "second", "whole_trip") == await orders.left(
        api, f"G1-{day:%Y%m%d}"
    )
    # Capped: with room for one unit, one (the first departure's first class) is reported.
    one = await sampler(api, stock_watch_max=1).collect()
    assert one["watched_units"] == 1
    # Once the sale has ended its runs are no longer watched.
    api.clock.advance(3601)
    later = await sampler(api).collect()
    assert later["stock"] == []


async def test_watched_units_are_capped_and_dropped_units_disappear(api: Api) -> None:
    drafts = [api.slot(capacity=2 + i, hours_ahead=24 + i) for i in range(3)]
    slots = await api.publish("hosp-a", drafts)
    watch = tuple(f"slot:{slot['id']}" for slot in slots)
    s = sampler(api, stock_watch=watch, stock_watch_max=2)
    await s.sample()
    m = await scrape(api)
    assert value(m, "fairseat_stock_watched_units") == 2
    got = [stock(m, f"slot:{slot['id']}") for slot in slots]
    assert got == [2, 3, None]
    # A hold on a watched slot shows at the next pass.
    who = await register(api.client)
    await post(api, "/v1/bookings", who, {"slot_id": slots[0]["id"]}, 201, "h")
    s.services = dataclasses.replace(
        s.services, settings=s.services.settings.replace(stock_watch=watch[:1])
    )
    await s.sample()
    m = await scrape(api)
    slot0 = f"slot:{slots[0]['id']}"
    assert value(m, "fairseat_stock_remaining", unit=slot0, seat_class="", span="places") == 1
    slot1 = f"slot:{slots[1]['id']}"
    assert value(m, "fairseat_stock_remaining", unit=slot1, seat_class="", span="places") is None


async def test_operator_live_json(api: Api) -> None:
    sale, [slot] = await queued_sale(api, capacity=3)
    sale_id = sale["sale_id"]
    people = await citizens(api, 4)
    for _, headers in people[:2]:
        await join(api, sale_id, headers)
    # Citizens and anonymous callers may not read it.
    assert (await api.client.get("/v1/operator/live")).status == 401
    resp = await api.client.get("/v1/operator/live", headers=people[0][1])
    assert resp.status == 403
    # No sampler has run: read directly, no rates.
    body = await live(api)
    assert body["source"] == "direct"
    [q] = [q for q in body["sales"] if q["sale_id"] == sale_id]
    assert q["joined"] == 2 and q["queue_waiting"] == 2 and q["admitted"] == 0
    assert q["remaining_stock"] == [
        {"unit": f"sale:{sale_id}", "seat_class": "", "span": "places", "remaining": 3}
    ]
    assert "admission_rate_per_s" not in q

    s = sampler(api)
    first = await s.sample()
    assert first["sales"][0]["admission_rate_per_s"] is None  # no previous pass yet
    for _, headers in people[2:]:
        await join(api, sale_id, headers)
    open_the_sale(api)
    states = [await poll(api, sale_id, headers) for _, headers in people]
    await s.sample()
    body = await live(api)
    assert body["source"] == "sampler"
    [q] = [q for q in body["sales"] if q["sale_id"] == sale_id]
    assert q["joined"] == 4 and q["admitted"] == 3 and q["queue_waiting"] == 1
    assert q["admitted_unused"] == 3
    # 2 joins and 3 admissions since the last pass: both rates are positive.
    assert q["join_rate_per_s"] > 0 and q["admission_rate_per_s"] > 0
    totals = body["totals"]
    wanted = {"holds_per_s", "confirms_per_s", "persister_lag_s", "dead_letters"}
    assert wanted | {"dead_letters_waiting"} <= set(totals)
    assert totals["dead_letters_waiting"] == 0
    assert not math.isnan(totals["persister_lag_s"])
    assert totals["holds_per_s"] == 0 and totals["holds"] == 0

    # A hold through the queue: the sale's and the service's hold rates move.
    who = next(i for i, st in enumerate(states) if st["state"] == "admitted")
    resp = await hold(api, slot["id"], people[who][1], states[who]["queue_token"])
    assert resp.status == 201, await resp.text()
    await s.sample()
    body = await live(api)
    [q] = [q for q in body["sales"] if q["sale_id"] == sale_id]
    assert q["served"] == 1 and q["holds_per_s"] > 0
    assert body["totals"]["holds"] == 1 and body["totals"]["holds_per_s"] > 0
    assert q["remaining_stock"][0]["remaining"] == 2


def test_the_watch_setting_is_checked() -> None:
    ok = Settings.from_env({"FAIRSEAT_WATCH": "sale:s1, slot:x,run:G1-20261123/second"})
    assert ok.stock_watch == ("sale:s1", "slot:x", "run:G1-20261123/second")
    for bad in ("train:G1", "slot:", "G1"):
        with pytest.raises(SettingsError):
            Settings.from_env({"FAIRSEAT_WATCH": bad})
    with pytest.raises(SettingsError):
        Settings.from_env({"FAIRSEAT_WATCH_MAX": "0"})
