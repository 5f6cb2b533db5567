"""The hiredis-packing connection sends exactly the bytes redis-py's own packer sends."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from inventory.fast_connection import HiredisPackConnection

CASES: list[tuple[Any, ...]] = [
    ("EVALSHA", "a" * 40, 2, "fs:{s001}:seat:G1", "乘客", -7, 0),
    ("CLIENT SETNAME", "fairseat"),
    (b"SCRIPT LOAD", b"return 1"),
    ("SET", "k", 1.5),
    ("SET", "k", 0.1),
    ("SET", "k", 10**15),
    ("SET", "k", bytearray(b"\x00\xff"), memoryview(b"xyz")),
]


@pytest.mark.parametrize("args", CASES)
def test_packs_like_redis_py(args: tuple[Any, ...]) -> None:
    ours = b"".join(HiredisPackConnection().pack_command(*args))
    theirs = b"".join(Connection().pack_command(*args))
    assert ours == theirs


def test_pipelines_pack_like_redis_py() -> None:
    commands: list[tuple[Any, ...]] = [("SET", "a", "1"), ("INCRBY", "a", 2), ("GET", "a")]
    ours = b"".join(HiredisPackConnection().pack_commands(commands))
    theirs = b"".join(Connection().pack_commands(commands))
    assert ours == theirs


@pytest.mark.parametrize("bad", [None, True, object()])
def test_refuses_what_redis_py_refuses(bad: Any) -> None:
    with pytest.raises(DataError):
        HiredisPackConnection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
