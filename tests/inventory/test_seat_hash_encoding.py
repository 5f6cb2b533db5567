"""pcount stays a hashtable (O(1) lookups), from publish and after a rebuild."""

from __future__ import annotations

from redis.asyncio import Redis

from inventory.keys import Keys
from inventory.scripts import script_source
from inventory.seat_engine import SeatEngine
from inventory.seat_keys import HASHTABLE_FIELD, HASHTABLE_VALUE
from inventory.seat_model import SeatSpec


def test_the_lua_literal_is_the_python_constant() -> None:
    assert len(HASHTABLE_VALUE) > 64  # Redis' default hash-max-listpack-value
    assert f"'{HASHTABLE_VALUE}'" in script_source("seat_load")


async def test_published_and_rebuilt_maps_keep_pcount_a_hashtable(
    redis_url: str,
) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    engine = SeatEngine(client, Keys(prefix="encoding-test"))
    seats = [SeatSpec("01", row, letter) for row in range(1, 4) for letter in "ABC"]
    u = engine.unit("G9", "second")
    try:
        await engine.publish("G9", "second", 4, seats)
        held = await engine.hold("acct", "G9", "second", 1, 3, ["p1"], idempotency_key="k")
        assert await client.object("encoding", u.pcount) == "hashtable"
        assert await client.hget(u.pcount, HASHTABLE_FIELD) == HASHTABLE_VALUE
        # Readers see counts only.
        assert (await engine.remaining("G9", "second"))[(1, 3)] == len(seats) - 1
        assert await engine.audit("G9", "second") == []

        seat_map = await client.hgetall(u.seats)  # ordinal -> "<pattern>|<tail>"
        records = [str(seat_map[ordinal]) for ordinal in sorted(seat_map)]
        await client.delete(u.pcount)
        # A rebuild writes under its own marker (no guard here: the engine has none).
        await client.set(engine.keys.keys.epoch(u.shard), "rebuild-1")
        await engine.restore_unit("G9", "second", 4, records, marker="rebuild-1")
        assert await client.object("encoding", u.pcount) == "hashtable"
        assert await engine.audit("G9", "second") == []
        await engine.cancel("acct", held.hold_id, where=("G9", "second"))
        assert (await engine.remaining("G9", "second"))[(1, 3)] == len(seats)
    finally:
        async for key in client.scan_iter(match="encoding-test:*"):
            await client.unlink(key)
        await client.aclose()
