"""``SeatEngine.release_one``: one passenger's seat of a confirmed party goes back (a
per-ticket refund), exactly once; the rest of the party keeps its seats, moves with a 改签
and is released later without touching the seat given back."""

from __future__ import annotations

import pytest

from inventory.errors import HoldNotLive, NotOwner
from inventory.seat_codes import InvalidSeatRequest
from inventory.seat_engine import SeatEngine
from tests.inventory.test_seat_engine import NOW, engine, events, hold

__all__ = ["engine"]  # the fixture, used by name


async def test_release_one_returns_one_seat_once(engine: SeatEngine) -> None:
    party = await hold(engine, 0, 3, "alice", "bob", "carol")
    await engine.confirm("acct", party.hold_id, now_ms=NOW)
    before = (await engine.remaining("G1", "second"))[0, 4]
    unpaid = await hold(engine, 0, 1, "dave", "erin", run="G3")
    with pytest.raises(HoldNotLive):  # an unpaid party is cancelled as a whole
        await engine.release_one("acct", unpaid.hold_id, 1, now_ms=NOW)
    with pytest.raises(NotOwner):
        await engine.release_one("mallory", party.hold_id, 2, now_ms=NOW)
    for bad in (0, 4):
        with pytest.raises(InvalidSeatRequest):
            await engine.release_one("acct", party.hold_id, bad, now_ms=NOW)

    done = await engine.release_one("acct", party.hold_id, 2, now_ms=NOW)
    assert (done.state, done.changed) == ("released_one", True)
    again = await engine.release_one("acct", party.hold_id, 2, now_ms=NOW)
    assert (again.state, again.changed) == ("released_one", False)
    occupancy = await engine.occupancy("G1", "second")
    assert occupancy[party.seats[1]] == "0000"
    assert occupancy[party.seats[0]] == occupancy[party.seats[2]] == "1110"
    assert before == 7
    assert (await engine.remaining("G1", "second"))[0, 4] == 8
    assert await engine.gone(party.hold_id) == {2: NOW}
    assert await engine.audit("G1", "second") == []
    # bob may buy again on this run: his place in the party no longer holds him.
    await hold(engine, 0, 1, "bob", key="bob-again")
    live = await engine.get_hold(party.hold_id)
    assert live is not None and live.state == "confirmed"
    assert live.passengers == ("alice", "bob", "carol")  # ticket n stays the n-th passenger
    # No event: the refund path records the ticket itself.
    assert [t for t, h in await events(engine) if h == party.hold_id] == ["held", "confirmed"]

    # The last live seat of a party is not released alone: the hold is cancelled instead.
    await engine.release_one("acct", party.hold_id, 1, now_ms=NOW)
    with pytest.raises(InvalidSeatRequest):
        await engine.release_one("acct", party.hold_id, 3, now_ms=NOW)
    outcome = await engine.cancel("acct", party.hold_id, now_ms=NOW)
    assert outcome.state == "cancelled"
    occupancy = await engine.occupancy("G1", "second")
    assert sorted(p for p in occupancy.values() if p != "0000") == ["1000"]  # bob's new one
    assert await engine.audit("G1", "second") == []
    with pytest.raises(HoldNotLive):
        await engine.release_one("acct", party.hold_id, 2, now_ms=NOW)


async def test_change_moves_only_the_live_passengers(engine: SeatEngine) -> None:
    party = await hold(engine, 0, 2, "alice", "bob")
    await engine.confirm("acct", party.hold_id, now_ms=NOW)
    await engine.release_one("acct", party.hold_id, 1, now_ms=NOW)
    new = await engine.change(
        "acct", party.hold_id, "G3", "second", 0, 2, idempotency_key="move", now_ms=NOW
    )
    moved = await engine.get_hold(new.hold_id)
    assert moved is not None and moved.passengers == ("bob",) and len(new.seats) == 1
    assert (await engine.occupancy("G1", "second"))[party.seats[0]] == "0000"
    assert (await engine.occupancy("G1", "second"))[party.seats[1]] == "0000"
    assert (await engine.remaining("G1", "second"))[0, 4] == 10
    assert (await engine.remaining("G3", "second"))[0, 2] == 9
    retry = await engine.change(
        "acct", party.hold_id, "G3", "second", 0, 2, idempotency_key="move", now_ms=NOW
    )
    assert retry.hold_id == new.hold_id
    assert (await engine.remaining("G3", "second"))[0, 2] == 9
    for run in ("G1", "G3"):
        assert await engine.audit(run, "second") == []
