"""Outbox events: packed in one field by the scripts, read back by name."""

from __future__ import annotations

import re
from typing import cast

import pytest
from redis.asyncio import Redis

from inventory.keys import Keys
from inventory.outbox_event import event_fields
from inventory.scripts import available_scripts, script_source
from inventory.seat_engine import SeatEngine
from inventory.seat_model import SeatSpec


def test_a_packed_event_reads_back_by_name() -> None:
    raw = {"e": "type\x1fheld\x1fhold\x1f007-ab\x1fchange_of\x1f\x1fat\x1f1700000000000"}
    assert event_fields(raw) == {
        "type": "held",
        "hold": "007-ab",
        "change_of": "",
        "at": "1700000000000",
    }


def test_an_entry_written_a_field_per_value_reads_the_same() -> None:
    raw = {"type": "held", "hold": "007-ab"}
    assert event_fields(raw) == raw
    # A plain entry that happens to have a field named `e` among others stays as it is.
    assert event_fields({"e": "x", "type": "held"}) == {"e": "x", "type": "held"}


def test_a_damaged_packed_event_is_refused() -> None:
    with pytest.raises(ValueError, match="odd number"):
        event_fields({"e": "type\x1fheld\x1fhold"})


def test_every_script_writes_its_events_as_one_packed_field() -> None:
    calls = 0
    for name in available_scripts():
        for line in re.findall(r"redis\.call\('XADD'.*", script_source(name)):
            calls += 1
            assert re.fullmatch(
                r"\s*redis\.call\('XADD', [^,]+, '\*', 'e', table\.concat\(\{ -- one field .*", line
            ), (name, line)
    assert calls >= 14


async def test_the_hold_script_writes_one_packed_field(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    engine = SeatEngine(client, Keys(prefix="outbox-event-test"))
    try:
        await engine.publish("G7", "second", 3, [SeatSpec("01", 1, "A")])
        held = await engine.hold("acct", "G7", "second", 0, 2, ["pax1"], idempotency_key="k")
        entries = await client.xrange(engine.unit("G7", "second").outbox)
        [(_, raw)] = cast(list[tuple[str, dict[str, str]]], entries)
        assert list(raw) == ["e"]
        event = event_fields(raw)
        assert event["type"] == "held" and event["hold"] == held.hold_id
        assert (event["run"], event["cls"], event["a"], event["b"]) == ("G7", "second", "0", "2")
        assert event["pax"] == "pax1" and event["change_of"] == ""
    finally:
        async for key in client.scan_iter(match="outbox-event-test:*"):
            await client.unlink(key)
        await client.aclose()
