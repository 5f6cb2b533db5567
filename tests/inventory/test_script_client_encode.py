"""The pipelining client's command packer: hiredis for the hot path, the same bytes as the
Python packer it replaced, and the Python packer for whatever hiredis would write
differently."""

from __future__ import annotations

from typing import Any

import pytest

from inventory.script_client import _encode_in_python, encode_command

CASES: list[list[Any]] = [
    ["EVALSHA", "a" * 40, 2, "fs:{s001}:seat:G1:second:meta", "乘客", -7, 0, 10**20, ""],
    [b"HGETALL", b"fs:{s001}:hold:\x00\xff"],
    ["PING"],
    ["SET", "k", 1.5],  # a float: Python's repr, not hiredis' own precision
    ["SET", "k", True],  # a bool: as the Python packer always wrote it
]


@pytest.mark.parametrize("parts", CASES)
def test_packs_what_the_python_packer_packs(parts: list[Any]) -> None:
    assert encode_command(parts) == _encode_in_python(parts)


def test_refuses_what_it_cannot_send() -> None:
    with pytest.raises(TypeError):
        encode_command(["SET", "k", None])
