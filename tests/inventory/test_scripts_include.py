"""Shared Lua code is pasted into scripts at load time (``-- include: <name>``)."""

from __future__ import annotations

import re

from inventory.scripts import available_scripts, include_source, script_source


def test_every_include_is_pasted_and_none_is_left_as_a_directive() -> None:
    for name in available_scripts():
        assert not re.search(r"^-- include:", script_source(name), re.M), name


def test_the_seat_map_include_defines_what_its_header_promises() -> None:
    code = include_source("seat_map")
    assert not code.startswith("--[[")  # the fragment's header stays out of the scripts
    for function in ("shift", "flush_gaps", "reindex", "gap_range", "top"):
        assert f"local function {function}(" in code


def test_the_release_decisions_are_shared_by_both_release_scripts() -> None:
    code = include_source("seat_release_decision")
    for name in ("seat_release", "seat_free"):
        assert code in script_source(name), name
    assert "local function frees(" in code and "local target\n" in code
    code = include_source("slot_release_decision")
    for name in ("slot_release", "slot_free"):
        assert code in script_source(name), name


def test_fragments_are_not_scripts() -> None:
    assert "seat_map" not in available_scripts()
    assert "seat_release_decision" not in available_scripts()
    assert "slot_release_decision" not in available_scripts()
    assert {"seat_hold", "seat_release", "seat_uncool"} <= set(available_scripts())
