"""The invariant checker against real servers: a small rush through the API, the persister
drained by hand, then the checker passes; one corrupted count or one extra row fails it,
and the failure names the slot or booking."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from inventory.slot_engine import shard_from_id
from loadtest.generator import closed_loop
from loadtest.invariants import Report, check_invariants
from loadtest.scenarios import SlotPlan, SlotRushOp, insert_citizens, publish_slots
from reservation.settings import Settings
from reservation.workers.persister import Persister
from tests.api_fixture import Api


async def drain(api: Api) -> None:
    persister = Persister(
        services=api.services,
        consumer="test",
        shards=list(range(api.services.settings.shard_count)),
    )
    for _ in range(50):
        if (await persister.run_once()).written == 0:
            return
    pytest.fail("the persister did not drain")


async def rush(api: Api, settings: Settings) -> tuple[SlotRushOp, list[str]]:
    assert settings.database_url is not None and settings.secret_key is not None
    url = str(api.client.make_url("")).rstrip("/")
    citizens = await insert_citizens(settings.database_url, settings.secret_key, 30)
    slot_ids = await publish_slots(
        api.client.session,
        url,
        provider_id="hosp-a",
        key=api.staff["hosp-a"],
        plan=SlotPlan(resources=2, per_resource=2, capacity=5),
    )
    op = SlotRushOp(url, citizens, slot_ids)
    result = await closed_loop(op, concurrency=8, seconds=1.5, session=api.client.session)
    assert result.count(200) == len(op.confirmed) == 20, result.summary()  # 4 slots x 5
    await drain(api)
    return op, slot_ids


def failed_subjects(report: Report) -> set[str]:
    return {f.subject for f in report.failures}


@pytest.mark.timeout(60)
async def test_a_clean_rush_passes_and_a_corrupted_count_fails(
    api: Api, settings: Settings, redis_client: Any
) -> None:
    op, slot_ids = await rush(api, settings)
    report = await check_invariants(settings, drain_timeout=5, expected_confirmed=op.confirmed)
    assert report.ok, report.table()
    names = {r.name: r for r in report.results}
    assert names["confirmed booking exactly once"].checked == 20
    assert names["slot redis available + cooling == capacity - live"].checked == 4
    assert "PASS" in report.table()

    victim = slot_ids[1]
    key = api.services.keys.slot(shard_from_id(victim), victim)
    await redis_client.hincrby(key, "available", 1)  # one place too many on sale
    report = await check_invariants(settings, drain_timeout=5)
    assert not report.ok
    assert failed_subjects(report) == {f"slot {victim}"}
    assert "invariants: FAIL" in report.table()


@pytest.mark.timeout(60)
async def test_an_extra_confirmed_row_fails_naming_it(api: Api, settings: Settings) -> None:
    op, _ = await rush(api, settings)
    async with api.services.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM bookings WHERE id = $1", op.confirmed[0])
        now = dt.datetime.now(dt.UTC)
        await conn.execute(
            """INSERT INTO bookings (id, slot_id, account_id, person_hmac, state, state_rank,
                   held_at, deadline, confirmed_at)
               VALUES ($1, $2, $3, 'someone-else', 'confirmed', 2, $4, $4, $4)""",
            "h0-ffffffffffffffffffffffff",
            row["slot_id"],
            row["account_id"],
            now,
        )
    report = await check_invariants(settings, drain_timeout=5)
    subjects = failed_subjects(report)
    assert "booking h0-ffffffffffffffffffffffff" in subjects  # no event, no hold in Redis
    assert f"slot {row['slot_id']}" in subjects  # 6 live > capacity 5, Redis disagrees

    # A booking the client was told was confirmed but Postgres lacks.
    report = await check_invariants(
        settings, drain_timeout=5, expected_confirmed=["h1-000000000000000000000000"]
    )
    assert "booking h1-000000000000000000000000" in failed_subjects(report)


@pytest.mark.timeout(30)
async def test_an_undrained_outbox_fails(api: Api, settings: Settings) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=3)])
    assert settings.database_url is not None and settings.secret_key is not None
    [citizen] = await insert_citizens(settings.database_url, settings.secret_key, 1)
    resp = await api.client.post(
        "/v1/bookings", json={"slot_id": slot["id"]}, headers=citizen.headers
    )
    assert resp.status == 201
    report = await check_invariants(settings, drain_timeout=0.2)
    shard = shard_from_id(slot["id"])
    assert f"shard {shard}" in failed_subjects(report)


@pytest.mark.timeout(60)
async def test_fairseat_load_books_then_checks(
    api: Api, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI end to end: publish, citizens, a closed-loop rush, the checker (with a
    persister running meanwhile, as ``fairseat serve`` has)."""
    import argparse
    import asyncio

    from reservation.commands import load as load_command

    parser = argparse.ArgumentParser()
    load_command.register(parser.add_subparsers(), lambda args: settings)
    args = parser.parse_args(
        [
            "load",
            "--url",
            str(api.client.make_url("")),
            "--provider",
            "hosp-a",
            "--key",
            api.staff["hosp-a"],
            "--citizens",
            "30",
            "--resources",
            "2",
            "--slots-per-resource",
            "1",
            "--capacity",
            "5",
            "--duration",
            "1",
            "--concurrency",
            "4",
            "--check",
            "--drain-timeout",
            "20",
        ]
    )
    stop = asyncio.Event()
    persister = Persister(
        services=api.services,
        consumer="cli-test",
        shards=list(range(api.services.settings.shard_count)),
    )
    running = asyncio.create_task(persister.run(stop, idle_sleep=0.02))
    try:
        # The command runs its own event loops: give it a thread, keep serving here.
        code = await asyncio.to_thread(args.func, args)
    finally:
        stop.set()
        await running
    out = capsys.readouterr().out
    assert code == 0, out
    assert "confirmed bookings: 10" in out
    assert "client-confirmed present" in out and "invariants: PASS" in out


@pytest.mark.timeout(60)
async def test_train_seats_pass_and_a_seat_sold_twice_or_freed_in_redis_fails(
    api: Api, settings: Settings, redis_client: Any
) -> None:
    """A paid party of two and an unpaid order on G1: the seat checks pass. A live ticket
    added in Postgres on a seat-segment already sold fails naming the seat; a seat freed in
    Redis behind Postgres' back fails the Redis == Postgres check."""
    from tests.trains import test_orders_api as orders

    run, me, _provider, party = await orders.held_party(api, extra=1)
    await orders.call(api, "POST", f"/v1/orders/{party['id']}/pay", me)
    other = await orders.citizen(api)
    await orders.call(api, "POST", "/v1/orders", other, orders.order_body(run, other["pax"]), 201)
    await drain(api)

    report = await check_invariants(settings, drain_timeout=5)
    assert report.ok, report.table()
    names = {r.name: r for r in report.results}
    assert names["seat-segment sold once (postgres)"].checked == 3  # 2 paid + 1 held
    assert names["paid train order exactly once"].checked == 1
    assert names["seats redis == postgres"].checked >= 1

    async with api.services.pool.acquire() as conn:
        ticket = await conn.fetchrow(
            "SELECT * FROM tickets WHERE hold_id = $1 AND passenger_no = 1", party["id"]
        )
        await conn.execute(
            """INSERT INTO tickets (id, hold_id, passenger_no, run_id, seat_class, coach, seat,
                   position, seg_from, seg_to, person_hmac, account_id, state, state_rank)
               VALUES ('intruder.1', 'intruder', 1, $1, $2, $3, $4, $5, $6, $7,
                       'someone-else', 'nobody', 'confirmed', 2)""",
            ticket["run_id"],
            ticket["seat_class"],
            ticket["coach"],
            ticket["seat"],
            ticket["position"],
            ticket["seg_from"],
            ticket["seg_to"],
        )
        seat = f"seat {run}/second {ticket['coach']}-{ticket['seat']}"
        report = await check_invariants(settings, drain_timeout=5)
        assert seat in failed_subjects(report), report.table()
        await conn.execute("DELETE FROM tickets WHERE hold_id = 'intruder'")

    unit = api.services.seats.unit(run, "second")
    records = await redis_client.hgetall(unit.seats)
    field, record = next((f, r) for f, r in records.items() if "1" in r.split("|", 1)[0])
    pattern, _, tail = record.partition("|")
    await redis_client.hset(unit.seats, field, "0" * len(pattern) + "|" + tail)
    report = await check_invariants(settings, drain_timeout=5)
    assert {f.check for f in report.failures} == {"seats redis == postgres"}, report.table()
