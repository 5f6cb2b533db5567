"""The waitlist scripts keep the inventory's contracts: headers, and seat_uncool frees seats
with the very code seat_release uses (the seat_map include)."""

from __future__ import annotations

from inventory.scripts import include_source, script_source


def test_seat_uncool_frees_seats_exactly_as_seat_release_does() -> None:
    for name in ("seat_uncool", "seat_release"):
        assert include_source("seat_map") in script_source(name)


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
