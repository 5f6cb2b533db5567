"""The Lua seat engine on a real Redis: life cycle, replay, wishes, adjacency, atomicity,
余票, 改签 and its crash paths, and an exact-count rush."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from importlib import resources
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from inventory.errors import (
    AlreadyExists,
    HoldExpired,
    HoldNotLive,
    NotOwner,
    PersonLimitReached,
)
from inventory.keys import Keys
from inventory.outbox_event import event_fields
from inventory.scripts import include_source, script_source
from inventory.seat_codes import (
    ChangeAborted,
    ChangePending,
    HoldNotDue,
    IdempotencyKeyReused,
    InventoryCorrupt,
    NoSeatForSegments,
)
from inventory.seat_engine import SeatEngine, SeatHold, SeatSpec
from inventory.segments import remaining_brute

NOW = 1_900_000_000_000
HOLD_MS = 60_000


def second_class(coaches: int = 1, rows: int = 2) -> list[SeatSpec]:
    return [
        SeatSpec(f"{c:02d}", r, letter)
        for c in range(1, coaches + 1)
        for r in range(1, rows + 1)
        for letter in "ABCDF"
    ]


@pytest.fixture
async def engine(redis_client: aioredis.Redis, key_prefix: str) -> SeatEngine:
    eng = SeatEngine(redis_client, Keys(prefix=key_prefix), clock=lambda: NOW, hold_ms=HOLD_MS)
    await eng.publish("G1", "second", 4, second_class())
    await eng.publish("G3", "second", 4, second_class())
    return eng


async def hold(
    eng: SeatEngine, a: int, b: int, *pax: str, run: str = "G1", key: str = "", **kw: object
) -> SeatHold:
    return await eng.hold(
        "acct", run, "second", a, b, list(pax) or ["alice"],
        idempotency_key=key or "-".join(pax) or "alice", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def outbox(eng: SeatEngine, run: str = "G1") -> list[dict[str, str]]:
    entries = await eng.client.xrange(eng.unit(run, "second").outbox)
    return [event_fields(fields) for _, fields in cast(list[tuple[str, Any]], entries)]


async def events(eng: SeatEngine, run: str = "G1") -> list[tuple[str, str]]:
    return [(e["type"], e["hold"]) for e in await outbox(eng, run)]


def test_hold_and_release_change_seats_with_the_same_code() -> None:
    for name in ("seat_hold", "seat_release"):
        text = resources.files("inventory").joinpath("lua", f"{name}.lua").read_text()
        assert "\n-- include: seat_map\n" in text
        assert include_source("seat_map") in script_source(name)
    for name in ("seat_load", "seat_hold", "seat_confirm", "seat_release"):
        assert script_source(name).startswith(f"--[[\n{name}: ")


async def test_publish_is_idempotent_and_keeps_sold_seats(engine: SeatEngine) -> None:
    held = await hold(engine, 0, 2)
    assert await engine.publish("G1", "second", 4, second_class()) is False
    occupancy = await engine.occupancy("G1", "second")
    assert occupancy[held.seats[0]] == "1100"
    with pytest.raises(AlreadyExists):
        await engine.publish("G1", "second", 5, second_class())


async def test_hold_confirm_cancel_with_events_and_deadlines(engine: SeatEngine) -> None:
    held = await hold(engine, 1, 3)
    assert held.seats[0].seat == "01A" and held.deadline_ms == NOW + HOLD_MS
    deadlines = engine.unit("G1", "second").deadlines
    assert await engine.client.zscore(deadlines, held.hold_id) == NOW + HOLD_MS
    assert (await engine.confirm("acct", held.hold_id)).changed
    assert await engine.client.zscore(deadlines, held.hold_id) is None
    assert not (await engine.confirm("acct", held.hold_id)).changed
    assert (await engine.cancel("acct", held.hold_id)).state == "cancelled"
    assert not (await engine.cancel("acct", held.hold_id)).changed
    assert await events(engine) == [
        ("held", held.hold_id),
        ("confirmed", held.hold_id),
        ("cancelled", held.hold_id),
    ]
    event = (await outbox(engine))[0]
    assert event["seats"] == "00001|01|1|A|window" and (event["a"], event["b"]) == ("1", "3")
    assert (await engine.remaining("G1", "second"))[0, 4] == 10
    assert await engine.audit("G1", "second") == []


async def test_only_the_owner_confirms_and_only_before_the_deadline(engine: SeatEngine) -> None:
    held = await hold(engine, 0, 1)
    with pytest.raises(NotOwner):
        await engine.confirm("mallory", held.hold_id)
    with pytest.raises(NotOwner):
        await engine.cancel("mallory", held.hold_id)
    with pytest.raises(HoldExpired):
        await engine.confirm("acct", held.hold_id, now_ms=NOW + HOLD_MS)


async def test_an_idempotent_retry_replays_and_a_reused_key_is_refused(engine: SeatEngine) -> None:
    first = await hold(engine, 0, 2, "alice", key="k")
    # The same call again, as a client resends it after a lost reply.
    again = await hold(engine, 0, 2, "alice", key="k", now_ms=NOW + 5)
    assert again.replayed and (again.hold_id, again.seats) == (first.hold_id, first.seats)
    assert (await engine.remaining("G1", "second"))[0, 2] == 9
    assert await events(engine) == [("held", first.hold_id)]
    with pytest.raises(IdempotencyKeyReused):
        await hold(engine, 0, 3, "alice", key="k")


async def test_one_live_ticket_per_passenger_per_run(engine: SeatEngine) -> None:
    held = await hold(engine, 0, 1, "alice")
    with pytest.raises(PersonLimitReached) as refused:
        await hold(engine, 2, 3, "bob", "alice")
    assert refused.value.fields == {"passenger": "alice"}
    await hold(engine, 2, 3, "alice", run="G3")  # another run is fine
    await engine.cancel("acct", held.hold_id)
    await hold(engine, 2, 3, "bob", "alice")


async def test_position_wish_and_adjacency(engine: SeatEngine) -> None:
    solo = await hold(engine, 0, 4, "p0", wish="aisle")
    assert (solo.seats[0].seat, solo.wish_met) == ("01C", True)
    party = await hold(engine, 0, 4, "p1", "p2", "p3", wish="window")
    assert [s.seat for s in party.seats] == ["01A", "01B", "01D"]  # row 1, at the window
    assert party.wish_met
    duo = await hold(engine, 0, 4, "p4", "p5")
    assert [s.seat for s in duo.seats] == ["02A", "02B"]  # not 01F + 02A: one row


async def test_best_fit_order_borders_busyness_tightness(engine: SeatEngine) -> None:
    await engine.publish("T8", "second", 8, second_class())
    for a, b in [(1, 2), (5, 7), (0, 3)]:  # 01A: 01000110, 01B: 11100000
        await hold(engine, a, b, f"p{a}", run="T8")
    assert (await hold(engine, 3, 5, "q", run="T8")).seats[0].seat == "01A"  # tighter gap
    assert (await hold(engine, 7, 8, "r", run="T8")).seats[0].seat == "01A"  # borders both
    assert (await hold(engine, 3, 4, "s", run="T8")).seats[0].seat == "01B"  # borders, busy
    assert (await hold(engine, 0, 8, "t", run="T8")).seats[0].seat == "01C"  # an empty seat
    occupancy = await engine.occupancy("T8", "second")
    assert [occupancy[s] for s in sorted(occupancy)][:3] == ["01011111", "11110000", "11111111"]


async def test_a_party_sits_in_one_row_when_one_is_free(engine: SeatEngine) -> None:
    await hold(engine, 0, 4, "p0")  # 01A
    party = await hold(engine, 0, 4, "p1", "p2", "p3", wish="window")
    assert [s.seat for s in party.seats] == ["01C", "01D", "01F"]


async def test_an_unmet_wish_still_holds(engine: SeatEngine) -> None:
    for i in range(4):  # every window seat of the coach
        await hold(engine, 0, 4, f"w{i}", wish="window")
    held = await hold(engine, 0, 4, "late", wish="window")
    assert held.seats[0].position != "window" and not held.wish_met


async def test_all_or_nothing_writes_nothing(engine: SeatEngine) -> None:
    for i in range(8):
        await hold(engine, 0, 4, f"p{i}")
    before = (await engine.occupancy("G1", "second"), await events(engine))
    with pytest.raises(NoSeatForSegments):
        await hold(engine, 1, 3, "x", "y", "z")
    assert (await engine.occupancy("G1", "second"), await events(engine)) == before
    assert len((await hold(engine, 1, 3, "x", "y")).seats) == 2


async def test_remaining_counts_agree_with_the_seats(engine: SeatEngine) -> None:
    rnd = random.Random(4)
    for i in range(30):
        a = rnd.randrange(4)
        b = rnd.randrange(a + 1, 5)
        with contextlib.suppress(NoSeatForSegments):
            await hold(engine, a, b, f"p{i}")
    patterns = list((await engine.occupancy("G1", "second")).values())
    table = await engine.remaining("G1", "second")
    assert table.pairs() == {
        (a, b): remaining_brute(patterns, a, b) for a in range(4) for b in range(a + 1, 5)
    }
    assert await engine.audit("G1", "second") == []


async def test_expire_and_the_sweeper(engine: SeatEngine) -> None:
    early = await hold(engine, 0, 1, "a1")
    late = await hold(engine, 1, 2, "a2", now_ms=NOW + 1000)
    with pytest.raises(HoldNotDue):
        await engine.expire(early.hold_id, now_ms=NOW + HOLD_MS - 1)
    shard = engine.keys.run_shard("G1")
    deadlines = engine.keys.keys.hold_deadlines(shard)
    # Another inventory's hold in the shared index is left alone; a dangling id is dropped.
    other = engine.keys.keys.hold(shard, f"{shard:03d}-slot")
    await engine.client.hset(other, "kind", "slot")
    await engine.client.zadd(deadlines, {f"{shard:03d}-slot": 1, f"{shard:03d}-gone": 2})
    swept = await engine.expire_due(shard, now_ms=NOW + HOLD_MS)
    assert [(o.hold_id, o.state) for o in swept] == [(early.hold_id, "expired")]
    assert await engine.client.zrange(deadlines, 0, -1) == [f"{shard:03d}-slot", late.hold_id]
    with pytest.raises(HoldNotLive):
        await engine.confirm("acct", early.hold_id, now_ms=NOW)
    assert not (await engine.expire(early.hold_id, now_ms=NOW + HOLD_MS)).changed
    assert (await engine.remaining("G1", "second"))[0, 1] == 10


async def test_a_corrupt_hold_is_refused_without_writing(engine: SeatEngine) -> None:
    held = await hold(engine, 0, 2)
    seats = engine.unit("G1", "second").seats
    record = await engine.client.hget(seats, "00001")
    assert record is not None
    await engine.client.hset(seats, "00001", "0000" + str(record)[4:])  # as if freed already
    before = await events(engine)
    with pytest.raises(InventoryCorrupt):
        await engine.cancel("acct", held.hold_id)
    assert await events(engine) == before
    info = await engine.get_hold(held.hold_id)
    assert info is not None and info.state == "held"


async def test_change_moves_a_ticket_to_another_run(engine: SeatEngine) -> None:
    old = await hold(engine, 0, 2, "alice", "bob")
    await engine.confirm("acct", old.hold_id)
    new = await engine.change("acct", old.hold_id, "G3", "second", 1, 4, idempotency_key="c")
    assert new.state == "confirmed" and len(new.seats) == 2
    old_info, new_info = await engine.get_hold(old.hold_id), await engine.get_hold(new.hold_id)
    assert old_info is not None and (old_info.state, old_info.changed_to) == (
        "changed",
        new.hold_id,
    )
    assert new_info is not None and (new_info.state, new_info.passengers) == (
        "confirmed",
        ("alice", "bob"),
    )
    assert (await engine.remaining("G1", "second"))[0, 4] == 10
    assert (await engine.remaining("G3", "second"))[1, 4] == 8
    assert (await events(engine, "G1"))[-1] == ("released", old.hold_id)
    again = await engine.change("acct", old.hold_id, "G3", "second", 1, 4, idempotency_key="c")
    assert (again.hold_id, again.state) == (new.hold_id, "confirmed")


async def test_a_refused_change_leaves_the_old_ticket(engine: SeatEngine) -> None:
    old = await hold(engine, 0, 2, "alice")
    with pytest.raises(HoldNotLive):  # not paid yet
        await engine.change("acct", old.hold_id, "G3", "second", 0, 1, idempotency_key="c")
    await engine.confirm("acct", old.hold_id)
    await engine.publish("G5", "second", 4, [SeatSpec("01", 1, "A")])
    await hold(engine, 0, 4, "bob", run="G5")
    with pytest.raises(NoSeatForSegments):
        await engine.change("acct", old.hold_id, "G5", "second", 0, 1, idempotency_key="c")
    info = await engine.get_hold(old.hold_id)
    assert info is not None and info.state == "confirmed"


async def test_change_crash_before_commit_is_undone_by_the_sweeper(engine: SeatEngine) -> None:
    old = await hold(engine, 0, 2, "alice")
    await engine.confirm("acct", old.hold_id)
    # The change process dies right after holding the new seat.
    new = await hold(engine, 0, 2, "alice", run="G3", key="c", change_of=old.hold_id)
    with pytest.raises(ChangePending):
        await engine.confirm("acct", new.hold_id)
    with pytest.raises(ChangePending):
        await engine.cancel("acct", new.hold_id)
    with pytest.raises(ChangePending):
        await engine.expire_raw(new.hold_id, now_ms=NOW + HOLD_MS)
    swept = await engine.expire_due(engine.keys.run_shard("G3"), now_ms=NOW + HOLD_MS)
    assert [(o.hold_id, o.state) for o in swept] == [(new.hold_id, "expired")]
    info = await engine.get_hold(old.hold_id)
    assert info is not None and info.state == "confirmed"
    assert (await engine.remaining("G3", "second"))[0, 4] == 10
    # A late retry of the change can no longer commit; the old ticket stands.
    with pytest.raises(ChangeAborted):
        await engine.change("acct", old.hold_id, "G3", "second", 0, 2, idempotency_key="c")
    assert (await engine.remaining("G1", "second"))[0, 2] == 9


async def test_change_crash_after_commit_is_rolled_forward(engine: SeatEngine) -> None:
    old = await hold(engine, 0, 2, "alice")
    await engine.confirm("acct", old.hold_id)
    new = await hold(engine, 0, 2, "alice", run="G3", key="c", change_of=old.hold_id)
    await engine.decide_change(old.hold_id, new.hold_id, commit=True, account_id="acct")
    # ... and dies before confirming the new hold; the sweeper finds the commit.
    swept = await engine.expire_due(engine.keys.run_shard("G3"), now_ms=NOW + HOLD_MS)
    assert [(o.hold_id, o.state) for o in swept] == [(new.hold_id, "confirmed")]
    assert (await engine.remaining("G1", "second"))[0, 4] == 10
    assert (await engine.remaining("G3", "second"))[0, 2] == 9


async def test_rush_never_sells_a_seat_segment_twice(engine: SeatEngine) -> None:
    """20,000 hold attempts for random trips and parties, 64 at a time, some cancelled
    again at once: the live holds never overlap and are exactly what Redis says is sold."""
    nseg, seats = 19, second_class(coaches=10, rows=20)
    await engine.publish("RUSH", "second", nseg, seats)
    rnd = random.Random(20)
    gate = asyncio.Semaphore(64)  # within the client's connection pool
    live: dict[str, SeatHold] = {}
    refused = 0

    async def attempt(i: int) -> None:
        nonlocal refused
        a, b = sorted(rnd.sample(range(nseg + 1), 2))
        party = [f"r{i}-{j}" for j in range(rnd.choice((1, 1, 1, 2, 3)))]
        wish = rnd.choice(("", "", "window", "aisle"))
        async with gate:
            try:
                held = await engine.hold(
                    "acct", "RUSH", "second", a, b, party, idempotency_key=f"r{i}", wish=wish
                )
            except NoSeatForSegments:
                refused += 1
                return
            live[held.hold_id] = held
            if i % 5 == 0:
                await engine.cancel("acct", held.hold_id, where=("RUSH", "second"))
                del live[held.hold_id]

    await asyncio.gather(*(attempt(i) for i in range(20_000)))
    sold: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * nseg)
    for held in live.values():
        a, b = held.segments
        for seat in held.seats:
            row = sold[(seat.coach, seat.seat)]
            for s in range(a, b):
                row[s] += 1
    assert all(count <= 1 for row in sold.values() for count in row)
    occupancy = await engine.occupancy("RUSH", "second")
    assert {
        (ref.coach, ref.seat): "".join(str(c) for c in sold[(ref.coach, ref.seat)])
        for ref in occupancy
    } == {(ref.coach, ref.seat): pattern for ref, pattern in occupancy.items()}
    assert sum(p.count("1") for p in occupancy.values()) <= len(seats) * nseg
    assert refused > 0 and len(live) > 0
    assert await engine.audit("RUSH", "second") == []
    table = await engine.remaining("RUSH", "second")
    assert table.pairs() == {
        (a, b): remaining_brute(occupancy.values(), a, b)
        for a in range(nseg)
        for b in range(a + 1, nseg + 1)
    }


@pytest.mark.cluster
async def test_the_engine_runs_on_redis_cluster(
    redis_cluster_client: RedisCluster, key_prefix: str
) -> None:
    eng = SeatEngine(redis_cluster_client, Keys(prefix=key_prefix), clock=lambda: NOW)
    for run in ("G1", "G3", "G5"):
        await eng.publish(run, "second", 4, second_class())
    old = await eng.hold("acct", "G1", "second", 0, 2, ["alice"], idempotency_key="1")
    await eng.confirm("acct", old.hold_id)
    new = await eng.change("acct", old.hold_id, "G5", "second", 1, 3, idempotency_key="2")
    assert new.state == "confirmed"
    assert (await eng.remaining("G1", "second"))[0, 4] == 10
    assert (await eng.remaining("G5", "second"))[1, 3] == 9
    assert await eng.audit("G5", "second") == []
    assert (await eng.cancel("acct", new.hold_id)).state == "cancelled"
    assert (await eng.remaining("G5", "second"))[0, 4] == 10
