"""The waitlist scripts keep the inventory's contracts: headers, and seat_uncool frees seats
with the very allocation block seat_release uses (a byte-identical copy)."""

from __future__ import annotations

import re

from inventory.scripts import script_source

BLOCK = re.compile(r"-- shared:begin.*?\n(.*?)-- shared:end", re.S)


def shared_block(name: str) -> str:
    match = BLOCK.search(script_source(name))
    assert match is not None, f"{name}.lua has no shared block"
    return match.group(1)


def test_seat_uncool_frees_seats_exactly_as_seat_release_does() -> None:
    assert shared_block("seat_uncool") == shared_block("seat_release")


def test_every_waitlist_script_has_its_contract_header() -> None:
    for name in (
        "slot_free",
        "slot_publish_cool",
        "slot_transfer",
        "slot_uncool",
        "seat_free",
        "seat_transfer",
        "seat_uncool",
        "waitlist_unit",
    ):
        assert script_source(name).startswith("--[[")
