"""Replaying dead letters: written under their original event id once the cause is fixed,
removed from the dead-letter stream only after the commit, harmless to repeat."""

from __future__ import annotations

from inventory.slot_engine import shard_from_id
from reservation.workers.dead_letters import list_dead_letters, replay_dead_letters
from reservation.workers.persister import PassResult
from tests.api_fixture import Api
from tests.helpers import register
from tests.workers.test_persister import (
    bookings,
    events,
    hold,
    make_persister,
    new_slot,
    outbox,
    stream,
)


async def test_a_dead_letter_is_replayed_once_its_cause_is_fixed(api: Api) -> None:
    slot_id = await new_slot(api)
    shard = shard_from_id(slot_id)
    citizen = await register(api.client)
    await hold(api, citizen, slot_id)
    [template] = await stream(api, shard)
    missing_slot = f"s{shard}-{'e' * 16}"
    poison_hold = f"h{shard}-{'1' * 24}"
    poison_id = await api.services.redis.xadd(
        outbox(api, shard), {**template.fields, "hold": poison_hold, "slot": missing_slot}
    )
    persister = make_persister(api, dead_letter_after=1)
    result = await persister.run_once()
    assert (result.written, result.dead_lettered) == (1, 1)

    [letter] = await list_dead_letters(api.services)
    assert (letter.shard, letter.entry_id, letter.fields["hold"]) == (shard, poison_id, poison_hold)
    assert letter.reason.startswith("ForeignKeyViolationError(")

    # Still broken: the replay fails and the letter stays.
    report = await replay_dead_letters(api.services)
    assert report.replayed == 0
    assert [(f.entry_id, e.split("(")[0]) for f, e in report.failed] == [
        (poison_id, "ForeignKeyViolationError")
    ]
    assert len(await list_dead_letters(api.services)) == 1

    # The operator fixes the cause (here: the slot row the event refers to).
    async with api.services.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO slots (id, provider_id, resource_id, day, starts_at, ends_at, capacity,"
            " release_at) SELECT $1, provider_id, resource_id, day, starts_at + interval '1 h',"
            " ends_at + interval '1 h', capacity, release_at FROM slots WHERE id = $2",
            missing_slot,
            slot_id,
        )
    report = await replay_dead_letters(api.services)
    assert (report.replayed, report.failed) == (1, [])
    assert await list_dead_letters(api.services) == []
    assert (await bookings(api))[poison_hold]["state"] == "held"
    assert (f"{shard}:{poison_id}", poison_hold, "held") in await events(api)

    # Replaying again, or the persister seeing more, changes nothing.
    assert (await replay_dead_letters(api.services)).replayed == 0
    assert await persister.run_once() == PassResult()
