"""Plain commands over the pipelining client (ScriptClient.command): the hot path's reads
of hold records go with the tick's scripts instead of through redis-py's per-call path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from inventory.keys import Keys
from inventory.script_client import ScriptClient
from inventory.seat_engine import SeatEngine
from inventory.seat_model import SeatSpec


@pytest.fixture
async def calls(redis_client: Any) -> AsyncIterator[ScriptClient]:
    client = ScriptClient(redis_client)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_command_and_its_errors(calls: ScriptClient, key_prefix: str) -> None:
    key = f"{key_prefix}:{{s001}}:h"
    assert await calls.command("HSET", key, "a", "1", "b", "2") == 2
    raw = await calls.command("HGETALL", key)
    pairs = dict(raw) if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
    assert pairs == {"a": "1", "b": "2"}
    with pytest.raises(ResponseError):
        await calls.command("LPUSH", key, "x")  # WRONGTYPE: raised, not returned


async def test_hold_records_read_the_same_on_both_paths(
    redis_client: Any, calls: ScriptClient, key_prefix: str
) -> None:
    keys = Keys(prefix=key_prefix)
    plain = SeatEngine(redis_client, keys)  # redis-py's own path
    piped = SeatEngine(redis_client, keys, calls=calls)
    if not isinstance(redis_client, RedisCluster):
        assert piped.calls._direct
    seats = [SeatSpec("01", 1, letter) for letter in "ABCDF"]
    await plain.publish("G1-20300101", "second", 3, seats)
    held = await piped.hold(
        "acct", "G1-20300101", "second", 0, 2, ["p1", "p2"], idempotency_key="k"
    )
    info = await piped.get_hold(held.hold_id)
    assert info is not None and info == await plain.get_hold(held.hold_id)
    assert (info.account_id, info.segments, info.passengers) == ("acct", (0, 2), ("p1", "p2"))
    assert await piped.get_hold("000-" + "0" * 32) is None
