"""Seat hold records: the fixed fields packed in one (`i`), read back by name in Python and
in Lua (inventory/lua/include/seat_hold_record.lua) in the same order."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory import hold_record
from inventory.keys import Keys
from inventory.scripts import include_source
from inventory.seat_engine import SeatEngine
from inventory.seat_model import SeatSpec

_VALUE = st.text(st.characters(blacklist_characters="\x1f", blacklist_categories=["Cs"]))


@given(st.fixed_dictionaries({name: _VALUE for name in hold_record.FIXED}), st.text())
def test_the_fixed_fields_pack_and_read_back(fixed: dict[str, str], state: str) -> None:
    raw = {hold_record.FIELD: hold_record.pack(fixed), "state": state}
    assert hold_record.record_fields(raw) == {**fixed, "state": state}


def test_a_record_without_the_packed_field_reads_as_it_is() -> None:
    assert hold_record.record_fields({"kind": "seat", "state": "held"}) == {
        "kind": "seat",
        "state": "held",
    }


def test_a_damaged_packed_field_is_refused() -> None:
    with pytest.raises(ValueError, match="3 packed fields"):
        hold_record.record_fields({hold_record.FIELD: "seat\x1fG1\x1fsecond"})


def test_the_lua_include_names_the_python_order() -> None:
    folder = resources.files("inventory").joinpath("lua", "include")
    text = folder.joinpath("seat_hold_record.lua").read_text("utf-8")
    assert ", ".join(hold_record.FIXED) in " ".join(text.split())
    [pattern] = re.findall(r"local HOLD_FIXED = '(.*)'", text)
    assert pattern.count(r"([^\31]*)") == len(hold_record.FIXED)


async def test_lua_unpacks_what_python_packs(redis_client: Any, key_prefix: str) -> None:
    fixed = {name: f"v-{name}" for name in hold_record.FIXED} | {"change_of": ""}
    script = include_source("seat_hold_record") + "return {string.match(ARGV[1], HOLD_FIXED)}"
    key = f"{key_prefix}:{{s001}}:any"  # a key, so a cluster routes the call
    got = await redis_client.eval(script, 1, key, hold_record.pack(fixed))
    assert got == [fixed[name] for name in hold_record.FIXED]


async def test_a_hold_is_stored_packed_and_reads_back_through_the_engine(
    redis_client: Any, key_prefix: str
) -> None:
    engine = SeatEngine(redis_client, Keys(prefix=key_prefix))
    await engine.publish("G7", "second", 3, [SeatSpec("01", 1, "A"), SeatSpec("01", 1, "B")])
    held = await engine.hold(
        "acct", "G7", "second", 0, 2, ["p1", "p2"], idempotency_key="k", now_ms=1_000
    )
    raw = await redis_client.hgetall(engine.keys.hold(held.hold_id))
    assert set(raw) == {hold_record.FIELD, "state"}
    fields = hold_record.record_fields(raw)
    assert (fields["kind"], fields["run"], fields["cls"], fields["acct"]) == (
        "seat",
        "G7",
        "second",
        "acct",
    )
    assert (fields["a"], fields["b"], fields["pax"], fields["state"]) == ("0", "2", "p1,p2", "held")
    assert fields["deadline"] == str(held.deadline_ms) and fields["change_of"] == ""
    # Every reader sees the same hold: the replay (Lua), the engine's view, confirm, cancel.
    again = await engine.hold(
        "acct", "G7", "second", 0, 2, ["p1", "p2"], idempotency_key="k", now_ms=1_000
    )
    assert again.replayed and again.seats == held.seats and again.deadline_ms == held.deadline_ms
    info = await engine.get_hold(held.hold_id)
    assert info is not None and info.passengers == ("p1", "p2") and info.segments == (0, 2)
    assert (await engine.confirm("acct", held.hold_id, now_ms=2_000)).state == "confirmed"
    assert (await engine.cancel("acct", held.hold_id, now_ms=3_000)).state == "cancelled"
    after = hold_record.record_fields(await redis_client.hgetall(engine.keys.hold(held.hold_id)))
    assert (after["state"], after["confirmed"], after["ended"]) == ("cancelled", "2000", "3000")
    assert after["seats"] == fields["seats"]  # the fixed fields are written once
