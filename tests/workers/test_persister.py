"""The persister on real Redis and Postgres: outbox streams -> bookings and inventory_events.

Real holds, confirms and cancels go through the HTTP API; the tests then drive
``Persister.run_once()`` (or ``_process``) by hand, kill it at chosen points, break
Postgres, and feed it poison, checking what reached Postgres and what stays pending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from inventory.slot_engine import shard_from_id
from reservation.domain.clock import from_ms
from reservation.workers.persister import GROUP, Entry, PassResult, Persister
from tests.api_fixture import Api
from tests.helpers import register


@dataclasses.dataclass(frozen=True)
class Life:
    """One booking taken through hold -> confirm -> cancel over the API."""

    hold_id: str
    slot_id: str
    account_id: str
    shard: int
    held_ms: int
    citizen: dict[str, Any]


def make_persister(api: Api, consumer: str = "p1", **options: Any) -> Persister:
    return Persister(
        services=api.services,
        consumer=consumer,
        shards=list(range(api.services.settings.shard_count)),
        **options,
    )


async def new_slot(api: Api, capacity: int = 5) -> str:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=capacity)])
    return str(slot["id"])


async def hold(api: Api, citizen: dict[str, Any], slot_id: str) -> str:
    resp = await api.client.post(
        "/v1/bookings", json={"slot_id": slot_id}, headers=citizen["headers"]
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def act(api: Api, citizen: dict[str, Any], hold_id: str, what: str) -> None:
    resp = await api.client.post(f"/v1/bookings/{hold_id}/{what}", headers=citizen["headers"])
    assert resp.status == 200, await resp.text()


async def life(
    api: Api, slot_id: str | None = None, *, confirm: bool = True, cancel: bool = True
) -> Life:
    """Hold at t0, confirm at t0+10 s, cancel at t0+20 s (each optional)."""
    slot_id = slot_id or await new_slot(api)
    citizen = await register(api.client)
    held_ms = api.clock.now_ms
    hold_id = await hold(api, citizen, slot_id)
    if confirm:
        api.clock.advance(10)
        await act(api, citizen, hold_id, "confirm")
    if cancel:
        api.clock.now_ms = held_ms + 20_000
        await act(api, citizen, hold_id, "cancel")
    return Life(hold_id, slot_id, citizen["account_id"], shard_from_id(slot_id), held_ms, citizen)


def outbox(api: Api, shard: int) -> str:
    return api.services.keys.outbox(shard)


async def stream(api: Api, shard: int) -> list[Entry]:
    return [
        Entry(shard, eid, fields)
        for eid, fields in await api.services.redis.xrange(outbox(api, shard))
    ]


async def pending(api: Api, shard: int) -> int:
    summary = await api.services.redis.xpending(outbox(api, shard), GROUP)
    return int(summary["pending"])


async def events(api: Api) -> list[tuple[str, str, str]]:
    """(event id, hold id, type) of every inventory event, oldest first."""
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_id, hold_id, type FROM inventory_events ORDER BY at, event_id"
        )
    return [(r["event_id"], r["hold_id"], r["type"]) for r in rows]


async def bookings(api: Api) -> dict[str, dict[str, Any]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM bookings")
    return {r["id"]: dict(r) for r in rows}


def metric(api: Api, name: str) -> float | None:
    return api.services.metrics.registry.get_sample_value(name)


def expected_events(life: Life, entries: list[Entry]) -> list[tuple[str, str, str]]:
    return [(f"{life.shard}:{e.entry_id}", life.hold_id, e.fields["type"]) for e in entries]


def assert_cancelled_after_confirm(row: dict[str, Any], life: Life) -> None:
    assert {
        k: row[k]
        for k in (
            "slot_id",
            "account_id",
            "state",
            "state_rank",
            "held_at",
            "deadline",
            "confirmed_at",
            "ended_at",
            "end_reason",
        )
    } == {
        "slot_id": life.slot_id,
        "account_id": life.account_id,
        "state": "cancelled",
        "state_rank": 3,
        "held_at": from_ms(life.held_ms),
        "deadline": from_ms(life.held_ms + 600_000),
        "confirmed_at": from_ms(life.held_ms + 10_000),
        "ended_at": from_ms(life.held_ms + 20_000),
        "end_reason": "citizen",
    }


# The happy path and replays ----------------------------------------------------------


async def test_hold_confirm_cancel_become_one_cancelled_row_and_three_events(api: Api) -> None:
    booked = await life(api)
    entries = await stream(api, booked.shard)
    assert [e.fields["type"] for e in entries] == ["held", "confirmed", "cancelled"]

    assert await make_persister(api).run_once() == PassResult(written=3)

    rows = await bookings(api)
    assert list(rows) == [booked.hold_id]
    assert_cancelled_after_confirm(rows[booked.hold_id], booked)
    assert await events(api) == expected_events(booked, entries)
    assert await pending(api, booked.shard) == 0
    assert metric(api, "fairseat_persister_events_total") == 3.0


async def test_replays_change_nothing(api: Api) -> None:
    booked = await life(api)
    entries = await stream(api, booked.shard)
    persister = make_persister(api)
    assert await persister.run_once() == PassResult(written=3)
    before = (await bookings(api), await events(api))

    assert await persister.run_once() == PassResult()  # nothing new: nothing written
    # The same entries delivered again (as after a crash between COMMIT and XACK).
    assert await persister._process(entries) == PassResult(written=3)
    assert await persister._process(list(reversed(entries))) == PassResult(written=3)
    assert (await bookings(api), await events(api)) == before


class DiesBeforeAck(Persister):
    """A persister killed after its transaction committed, before it acknowledged."""

    async def _ack(self, entries: list[Entry]) -> None:
        raise ConnectionError("killed between COMMIT and XACK")


async def test_a_crash_between_commit_and_ack_is_replayed_harmlessly(api: Api) -> None:
    booked = await life(api)
    entries = await stream(api, booked.shard)
    doomed = DiesBeforeAck(
        services=api.services, consumer="p1", shards=list(range(api.services.settings.shard_count))
    )
    with pytest.raises(ConnectionError):
        await doomed.run_once()
    assert await events(api) == expected_events(booked, entries)  # committed...
    assert await pending(api, booked.shard) == 3  # ...but not acknowledged

    # The same consumer restarted reads its own pending entries again and writes them once.
    assert await make_persister(api, "p1").run_once() == PassResult(written=3)
    assert await events(api) == expected_events(booked, entries)
    assert list(await bookings(api)) == [booked.hold_id]
    assert await pending(api, booked.shard) == 0


async def test_out_of_order_arrival_still_ends_cancelled(api: Api) -> None:
    booked = await life(api)
    entries = await stream(api, booked.shard)
    # Leave the persister as the only writer (the confirm path wrote its own row).
    async with api.services.pool.acquire() as conn:
        await conn.execute("DELETE FROM bookings")
    persister = make_persister(api)
    await persister.ensure_groups()

    cancelled, confirmed, held = reversed(entries)
    assert await persister._process([cancelled]) == PassResult(written=1)
    assert (await bookings(api))[booked.hold_id]["state"] == "cancelled"
    for entry in (held, confirmed):  # a held event after the cancel must not revive it
        assert await persister._process([entry]) == PassResult(written=1)
    assert_cancelled_after_confirm((await bookings(api))[booked.hold_id], booked)
    assert await events(api) == expected_events(booked, entries)

    # The same, reversed inside one batch.
    async with api.services.pool.acquire() as conn:
        await conn.execute("DELETE FROM bookings; DELETE FROM inventory_events")
    assert await persister._process([cancelled, confirmed, held]) == PassResult(written=3)
    assert_cancelled_after_confirm((await bookings(api))[booked.hold_id], booked)
    assert await events(api) == expected_events(booked, entries)


# Acknowledge only after COMMIT -------------------------------------------------------


async def test_a_failing_statement_leaves_entries_pending_until_it_works(api: Api) -> None:
    booked = await life(api)
    entries = await stream(api, booked.shard)
    async with api.services.pool.acquire() as conn:
        await conn.execute("DELETE FROM bookings")
        await conn.execute("ALTER TABLE bookings RENAME TO bookings_away")
    persister = make_persister(api, dead_letter_after=10)

    assert await persister.run_once() == PassResult(retry_later=3)
    assert await persister.run_once() == PassResult(retry_later=3)
    # The events went in first, in the same transaction: rolled back with the rest.
    assert await events(api) == []
    assert await pending(api, booked.shard) == 3

    async with api.services.pool.acquire() as conn:
        await conn.execute("ALTER TABLE bookings_away RENAME TO bookings")
    assert await persister.run_once() == PassResult(written=3)
    assert_cancelled_after_confirm((await bookings(api))[booked.hold_id], booked)
    assert await events(api) == expected_events(booked, entries)
    assert await pending(api, booked.shard) == 0


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port held by us and never listening: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def test_postgres_down_raises_and_acknowledges_nothing(api: Api, refused_port: int) -> None:
    booked = await life(api)
    entries = await stream(api, booked.shard)
    down = await asyncpg.create_pool(
        f"postgresql://nobody@127.0.0.1:{refused_port}/x", min_size=0, max_size=1
    )
    persister = make_persister(api)
    persister.services = dataclasses.replace(api.services, pool=down)
    try:
        for _ in range(2):
            with pytest.raises(ConnectionRefusedError):
                await persister.run_once()
            assert await pending(api, booked.shard) == 3
    finally:
        await down.close()
    assert await events(api) == []

    persister.services = api.services  # Postgres is back
    assert await persister.run_once() == PassResult(written=3)
    assert await events(api) == expected_events(booked, entries)
    assert await pending(api, booked.shard) == 0


# Crashed consumers, poison, malformed entries ------------------------------------------


async def test_entries_of_a_dead_consumer_are_reclaimed_once_idle(api: Api) -> None:
    booked = await life(api)
    entries = await stream(api, booked.shard)
    await make_persister(api, "a").ensure_groups()
    # Consumer "a" reads everything, then dies without acknowledging.
    read = await api.services.redis.xreadgroup(
        GROUP, "a", {outbox(api, booked.shard): ">"}, count=100
    )
    assert read
    assert await pending(api, booked.shard) == 3

    # Not idle long enough yet: another consumer leaves them alone.
    assert await make_persister(api, "b", claim_idle_ms=60_000).run_once() == PassResult()
    assert await events(api) == []

    await asyncio.sleep(0.1)
    assert await make_persister(api, "c", claim_idle_ms=50).run_once() == PassResult(written=3)
    assert await events(api) == expected_events(booked, entries)
    assert_cancelled_after_confirm((await bookings(api))[booked.hold_id], booked)
    assert await pending(api, booked.shard) == 0


@pytest.mark.parametrize("restart", [False, True], ids=["same-consumer", "after-restart"])
async def test_a_poison_entry_is_dead_lettered_after_n_deliveries(api: Api, restart: bool) -> None:
    slot_id = await new_slot(api)
    shard = shard_from_id(slot_id)
    citizen = await register(api.client)
    hold_id = await hold(api, citizen, slot_id)
    [template] = await stream(api, shard)
    # A booking for a slot that does not exist: a foreign-key violation, on every try.
    poison_hold = f"h{shard}-{'0' * 24}"
    poison_id = await api.services.redis.xadd(
        outbox(api, shard), {**template.fields, "hold": poison_hold, "slot": f"s{shard}-{'f' * 16}"}
    )
    await act(api, citizen, hold_id, "cancel")

    persister = make_persister(api, dead_letter_after=3)
    assert await persister.run_once() == PassResult(written=2, retry_later=1)
    assert await persister.run_once() == PassResult(retry_later=1)
    [still] = await api.services.redis.xpending_range(
        outbox(api, shard), GROUP, min="-", max="+", count=10
    )
    assert (still["message_id"], still["times_delivered"]) == (poison_id, 2)
    if restart:
        # A new process knows nothing of the failures: Redis's delivery count decides.
        persister = make_persister(api, "p2", dead_letter_after=3, claim_idle_ms=1)
        await asyncio.sleep(0.01)
    assert await persister.run_once() == PassResult(dead_lettered=1)

    [dead] = await api.services.redis.xrange(api.services.keys.dead_letters(shard))
    dead_fields = dead[1]
    assert dead_fields["_entry"] == poison_id
    assert dead_fields["_reason"].startswith("ForeignKeyViolationError(")
    assert {k: v for k, v in dead_fields.items() if not k.startswith("_")} == {
        **template.fields,
        "hold": poison_hold,
        "slot": f"s{shard}-{'f' * 16}",
    }
    assert await pending(api, shard) == 0
    assert [(h, t) for _, h, t in await events(api)] == [(hold_id, "held"), (hold_id, "cancelled")]
    assert list(await bookings(api)) == [hold_id]
    assert metric(api, "fairseat_persister_dead_letters_total") == 1.0
    assert await persister.run_once() == PassResult()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"slot": None, "person": None}, "malformed: field 'slot' missing"),
        ({"type": "teleported"}, "malformed: unknown event type 'teleported'"),
        ({"deadline": "tomorrow"}, "malformed: field 'deadline' missing or not a time"),
        # Beyond what a datetime can hold: used to raise OSError, which the persister took
        # for "Postgres unavailable" and retried forever, stalling every shard.
        ({"at": str(10**20)}, "malformed: field 'at' missing or not a time"),
    ],
    ids=["missing-fields", "unknown-type", "bad-time", "time-out-of-range"],
)
async def test_a_malformed_entry_is_dead_lettered_at_once(
    api: Api, change: dict[str, str | None], reason: str
) -> None:
    slot_id = await new_slot(api)
    shard = shard_from_id(slot_id)
    citizen = await register(api.client)
    hold_id = await hold(api, citizen, slot_id)
    [template] = await stream(api, shard)
    fields = {k: v for k, v in {**template.fields, **change}.items() if v is not None}
    bad_id = await api.services.redis.xadd(outbox(api, shard), fields)
    await act(api, citizen, hold_id, "cancel")

    assert await make_persister(api).run_once() == PassResult(written=2, dead_lettered=1)
    [(_, dead)] = await api.services.redis.xrange(api.services.keys.dead_letters(shard))
    assert dead == {**fields, "_entry": bad_id, "_reason": reason}
    assert await pending(api, shard) == 0
    assert [(h, t) for _, h, t in await events(api)] == [(hold_id, "held"), (hold_id, "cancelled")]


# Bounded streams and bounded passes -----------------------------------------------------


async def test_trimming_never_drops_what_a_group_has_not_acknowledged(api: Api) -> None:
    slot_id = await new_slot(api)
    first = await life(api, slot_id)
    key = outbox(api, first.shard)
    redis = api.services.redis
    persister = make_persister(api, "p1")
    assert await persister.run_once() == PassResult(written=3)
    ids = [e.entry_id for e in await stream(api, first.shard)]
    assert len(ids) == 1  # acknowledged history dropped; the last delivered id stays

    second = await life(api, slot_id)
    e4, e5, e6 = (e.entry_id for e in (await stream(api, second.shard))[1:])
    # Another consumer of the group takes e4 and stalls (not yet idle enough to reclaim).
    await redis.xreadgroup(GROUP, "stalled", {key: ">"}, count=1)
    assert await persister.run_once() == PassResult(written=2)
    assert [e.entry_id for e in await stream(api, first.shard)] == [e4, e5, e6]

    # e4 acknowledged at last; now a second group that has read nothing yet appears.
    await redis.xack(key, GROUP, e4)
    await redis.xgroup_create(key, "audit", id="0")
    third_citizen = await register(api.client)
    third = await hold(api, third_citizen, slot_id)
    assert await persister.run_once() == PassResult(written=1)
    [e7] = [e.entry_id for e in await stream(api, first.shard)][3:]
    assert [e.entry_id for e in await stream(api, first.shard)] == [e4, e5, e6, e7]

    # The other group consumes two entries; trimming follows the slowest group.
    read = await redis.xreadgroup("audit", "x", {key: ">"}, count=2)
    await redis.xack(key, "audit", e4, e5)
    assert read
    await act(api, third_citizen, third, "cancel")
    assert await persister.run_once() == PassResult(written=1)
    e8 = (await stream(api, first.shard))[-1].entry_id
    assert [e.entry_id for e in await stream(api, first.shard)] == [e5, e6, e7, e8]
    assert len(await events(api)) == 7  # all but e4, which was acknowledged by hand


async def test_small_batches_persist_every_entry_they_read(api: Api) -> None:
    slot_id = await new_slot(api)
    first = await life(api, slot_id)
    await life(api, slot_id)
    assert len(await stream(api, first.shard)) == 6
    # batch_size=1 reads 10 entries per shard but works through at most 4 per pass: the
    # rest were already delivered to this consumer and must not be left stranded.
    persister = make_persister(api, batch_size=1)
    written = [(await persister.run_once()).written for _ in range(4)]
    assert sum(written) == 6
    assert written[-1] == 0
    assert len(await events(api)) == 6
    assert await pending(api, first.shard) == 0


async def test_a_restarted_persister_drains_more_than_one_page_of_its_own_backlog(api: Api) -> None:
    slot_id = await new_slot(api)
    shard = shard_from_id(slot_id)
    citizen = await register(api.client)
    await hold(api, citizen, slot_id)
    [template] = await stream(api, shard)
    for n in range(1, 12):  # 12 entries in all, in one shard
        await api.services.redis.xadd(
            outbox(api, shard), {**template.fields, "hold": f"h{shard}-{n:024x}"}
        )
    await make_persister(api, "p1").ensure_groups()
    # The previous life of "p1" read all twelve and was killed before acknowledging.
    await api.services.redis.xreadgroup(GROUP, "p1", {outbox(api, shard): ">"}, count=100)
    assert await pending(api, shard) == 12

    # batch_size=40 reads history 10 entries per shard at a time.
    persister = make_persister(api, "p1", batch_size=40)
    written = [(await persister.run_once()).written for _ in range(3)]
    assert written == [10, 2, 0]
    assert await pending(api, shard) == 0
    assert len(await bookings(api)) == 12
