"""The series scripts on their own: all or nothing, replays, ownership, the epoch guard."""

from __future__ import annotations

import datetime as dt

import pytest

from inventory import errors
from inventory.series_engine import SeriesRefused, SeriesSpansShards, series_engine
from inventory.slot_engine import hold_id_for
from tests.api_fixture import Api
from tests.vaccine.support import Site, publish, row


def holds_for(slot_ids: list[str], tag: str) -> list[str]:
    return [hold_id_for(s, f"{tag}{i:02d}".ljust(24, "0")) for i, s in enumerate(slot_ids)]


async def test_a_refused_dose_writes_nothing(api: Api, site: Site) -> None:
    # Dose 2 is not released yet: dose 1 must not be held either.
    slots = await publish(
        api,
        site,
        [
            row(api, days_ahead=1),
            {
                **row(api, days_ahead=25),
                "release_at": (api.clock.now + dt.timedelta(days=20)).isoformat(),
            },
        ],
    )
    ids = [s["id"] for s in slots]
    engine = series_engine(api.services.slots)
    now = api.clock()
    with pytest.raises(SeriesRefused) as refused:
        await engine.hold(
            slot_ids=ids,
            hold_ids=holds_for(ids, "aa"),
            account_id="a1",
            person="p1",
            series_id="vs-1",
            idempotency_key="k",
            now_ms=now,
            deadline_ms=now + 60_000,
        )
    assert isinstance(refused.value.cause, errors.NotReleased)
    assert refused.value.dose_index == 2
    assert await api.services.slots.available(ids) == {ids[0]: 10, ids[1]: 10}
    assert await api.services.slots.read_hold(holds_for(ids, "aa")[0]) is None


async def test_replay_confirm_and_ownership(api: Api, site: Site) -> None:
    slots = await publish(api, site, [row(api, days_ahead=1), row(api, days_ahead=25)])
    ids = [s["id"] for s in slots]
    hold_ids = holds_for(ids, "bb")
    engine = series_engine(api.services.slots)
    now = api.clock()
    args = dict(
        slot_ids=ids,
        hold_ids=hold_ids,
        person="p1",
        series_id="vs-2",
        idempotency_key="k",
        now_ms=now,
        deadline_ms=now + 60_000,
    )
    first = await engine.hold(account_id="a1", **args)  # type: ignore[arg-type]
    again = await engine.hold(account_id="a1", **args)  # type: ignore[arg-type]
    assert (first.replay, again.replay) == (False, True)
    assert await api.services.slots.available(ids) == {ids[0]: 9, ids[1]: 9}
    # Another account naming the same hold keys: refused, nothing changed.
    with pytest.raises(SeriesRefused) as refused:
        await engine.hold(account_id="a2", **args)  # type: ignore[arg-type]
    assert refused.value.cause.code == "idempotency_key_reused"
    with pytest.raises(errors.NotOwner):
        await engine.confirm(hold_ids=hold_ids, account_id="a2", series_id="vs-2", now_ms=now)
    with pytest.raises(errors.NotOwner):
        await engine.confirm(hold_ids=hold_ids, account_id="a1", series_id="vs-x", now_ms=now)
    # Past the deadline nothing is confirmed.
    with pytest.raises(errors.HoldExpired):
        await engine.confirm(
            hold_ids=hold_ids, account_id="a1", series_id="vs-2", now_ms=now + 60_000
        )
    done = await engine.confirm(hold_ids=hold_ids, account_id="a1", series_id="vs-2", now_ms=now)
    redo = await engine.confirm(hold_ids=hold_ids, account_id="a1", series_id="vs-2", now_ms=now)
    assert (done.replay, redo.replay) == (False, True)
    assert redo.confirmed_ms == done.confirmed_ms
    states = [(await api.services.slots.read_hold(h)) for h in hold_ids]
    assert [s.state for s in states if s is not None] == ["confirmed", "confirmed"]


async def test_one_expired_dose_confirms_nothing(api: Api, site: Site) -> None:
    slots = await publish(api, site, [row(api, days_ahead=1), row(api, days_ahead=25)])
    ids = [s["id"] for s in slots]
    hold_ids = holds_for(ids, "cc")
    engine = series_engine(api.services.slots)
    now = api.clock()
    await engine.hold(
        slot_ids=ids,
        hold_ids=hold_ids,
        account_id="a1",
        person="p1",
        series_id="vs-3",
        idempotency_key="k",
        now_ms=now,
        deadline_ms=now + 1000,
    )
    # The sweeper expired dose 2 only (it works hold by hold).
    await api.services.slots.release(
        hold_id=hold_ids[1],
        slot_id=ids[1],
        account_id=None,
        now_ms=now + 1000,
        state="expired",
        reason="deadline",
    )
    with pytest.raises(errors.HoldNotLive):
        await engine.confirm(hold_ids=hold_ids, account_id="a1", series_id="vs-3", now_ms=now)
    first = await api.services.slots.read_hold(hold_ids[0])
    assert first is not None and first.state == "held"


async def test_a_series_stays_in_one_shard(api: Api, site: Site) -> None:
    slots = await publish(api, site, [row(api, days_ahead=1), row(api, days_ahead=25)])
    ids = [s["id"] for s in slots]
    shard = int(ids[0].split("-")[0][1:])
    other = (shard + 1) % api.services.keys.shard_count
    now = api.clock()
    with pytest.raises(SeriesSpansShards):
        await series_engine(api.services.slots).hold(
            slot_ids=ids,
            hold_ids=[hold_id_for(ids[0], "d" * 24), f"h{other}-{'e' * 24}"],
            account_id="a1",
            person="p1",
            series_id="vs-4",
            idempotency_key="k",
            now_ms=now,
            deadline_ms=now + 1000,
        )
    assert await api.services.slots.available(ids) == {ids[0]: 10, ids[1]: 10}
