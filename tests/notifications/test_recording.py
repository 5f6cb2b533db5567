"""Booking events become notifications in the persister's transaction, once each, with
the day-before reminder scheduled on confirmation and cancelled on cancellation."""

from __future__ import annotations

import datetime as dt

from inventory.slot_engine import shard_from_id
from reservation.notifications.store import inbox_page
from reservation.workers.persister import Entry, PassResult
from reservation.workers.sweeper import Sweeper
from tests.api_fixture import Api
from tests.notifications.support import (
    act,
    citizen,
    hold,
    new_slot,
    notes,
    persister,
    reminders,
)


async def test_hold_confirm_cancel_become_three_notifications(api: Api) -> None:
    slot_id = await new_slot(api, hours_ahead=72)
    who = await citizen(api)
    hold_id = await hold(api, who, slot_id)
    await persister(api).run_once()
    subject = f"booking:{hold_id}"
    assert await notes(api) == [("held", subject, f"{subject}:held")]

    api.clock.advance(10)
    await act(api, who, hold_id, "confirm")
    await persister(api).run_once()
    assert [k for k, _, _ in await notes(api)] == ["held", "confirmed"]
    [reminder] = await reminders(api)
    async with api.services.pool.acquire() as conn:
        starts = await conn.fetchval("SELECT s.starts_at FROM slots s WHERE s.id = $1", slot_id)
    assert reminder["subject"] == subject
    assert reminder["account_id"] == who["account_id"]
    assert reminder["remind_at"] == starts - dt.timedelta(days=1)
    assert reminder["cancelled_at"] is None

    api.clock.advance(10)
    await act(api, who, hold_id, "cancel")
    await persister(api).run_once()
    assert [k for k, _, _ in await notes(api, who["account_id"])] == [
        "held",
        "confirmed",
        "cancelled",
    ]
    [reminder] = await reminders(api)
    assert reminder["cancelled_at"] == api.clock.now  # the event's time, not the wall clock

    # The payload says what happened, in the citizen's time zone.
    async with api.services.pool.acquire() as conn:
        page, unread = await inbox_page(conn, who["account_id"], before=None, limit=10)
    assert unread == 3
    assert page[0].payload == {
        "booking_id": hold_id,
        "slot_id": slot_id,
        "state": "cancelled",
        "reason": "citizen",
    }
    assert page[2].payload["pay_by"].endswith("+08:00")


async def test_replayed_events_record_nothing_new(api: Api) -> None:
    slot_id = await new_slot(api, hours_ahead=72)
    who = await citizen(api)
    hold_id = await hold(api, who, slot_id)
    await act(api, who, hold_id, "confirm")
    entries = await _entries(api, slot_id)  # before the persister trims the stream
    p = persister(api)
    assert await p.run_once() == PassResult(written=2)  # held and confirmed, one batch
    before = await notes(api)
    assert [k for k, _, _ in before] == ["held", "confirmed"]

    # The same entries again, as after a crash between COMMIT and XACK, in any order.
    assert await p._process(entries) == PassResult(written=2)
    assert await p._process(list(reversed(entries))) == PassResult(written=2)
    assert await notes(api) == before
    assert len(await reminders(api)) == 1


async def test_expiry_is_told_and_confirmed_soon_needs_no_reminder(api: Api) -> None:
    soon = await new_slot(api, hours_ahead=5)  # within the reminder lead
    who = await citizen(api)
    paid = await hold(api, who, soon)
    await act(api, who, paid, "confirm")
    later = await new_slot(api, hours_ahead=72)
    other = await citizen(api)
    await hold(api, other, later)
    api.clock.advance(601)  # past the 10-minute payment deadline
    sweeper = Sweeper(api.services, list(range(api.services.settings.shard_count)))
    await sweeper.run_once()
    await persister(api).run_once()
    assert [k for k, _, _ in await notes(api, who["account_id"])] == ["held", "confirmed"]
    assert [k for k, _, _ in await notes(api, other["account_id"])] == ["held", "expired"]
    assert await reminders(api) == []


async def test_every_recorded_notification_is_queued_for_delivery(api: Api) -> None:
    slot_id = await new_slot(api)
    who = await citizen(api)
    await hold(api, who, slot_id)
    await persister(api).run_once()
    async with api.services.pool.acquire() as conn:
        queued = await conn.fetchval(
            "SELECT count(*) FROM notification_pending p JOIN notifications n"
            " ON n.id = p.notification_id WHERE n.account_id = $1",
            who["account_id"],
        )
    assert queued == 1


async def _entries(api: Api, slot_id: str) -> list[Entry]:
    shard = shard_from_id(slot_id)
    raw = await api.services.redis.xrange(api.services.keys.outbox(shard))
    return [Entry(shard, eid, fields) for eid, fields in raw]
