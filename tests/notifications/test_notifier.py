"""The notifier: each notification delivered once per channel, across restarts; failed
sends retried with backoff; reminders fired once, at their time, never after a cancel."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

import pytest

from reservation.notifications.record import cancel_reminders, schedule_reminder
from reservation.workers.notifier import Notifier, PassResult
from tests.api_fixture import Api
from tests.helpers import insert_citizens
from tests.notifications.support import (
    RecordingSender,
    act,
    citizen,
    hold,
    new_slot,
    notes,
    persister,
    record_plain,
    reminders,
)


async def deliveries(api: Api) -> list[tuple[int, str, str]]:
    async with api.services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT notification_id, channel, outcome FROM notification_deliveries"
            " ORDER BY notification_id, channel"
        )
    return [(r["notification_id"], r["channel"], r["outcome"]) for r in rows]


async def queued(api: Api) -> int:
    async with api.services.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM notification_pending"))


async def test_each_notification_reaches_every_channel_once(api: Api) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    ids = await record_plain(api, account, 5)
    sms, hook = RecordingSender("sms"), RecordingSender("hook")
    notifier = Notifier(api.services, [sms, hook], batch_size=2)
    for _ in range(3):
        await notifier.run_once()
    assert [i for i, _ in sms.sent] == ids
    assert [i for i, _ in hook.sent] == ids
    assert sms.sent[0][1] == f"{ids[0]}:sms"  # the idempotency key names the pair
    assert await queued(api) == 0
    assert await notifier.run_once() == PassResult()  # nothing left
    assert len(sms.sent) == 5
    assert await deliveries(api) == sorted(
        [(i, "hook", "delivered") for i in ids] + [(i, "sms", "delivered") for i in ids]
    )
    sample = api.services.metrics.registry.get_sample_value
    assert sample("fairseat_notifications_delivered_total", {"channel": "sms"}) == 5.0
    assert sample("fairseat_notifications_recorded_total", {"kind": "confirmed"}) == 5.0


@pytest.mark.parametrize("how", ["stop", "cancel"])
async def test_exactly_once_across_a_restart_mid_batch(api: Api, how: str) -> None:
    """Stopped after the 7th send of a 20-row batch (SIGTERM sets stop; a cancelled task is
    what asyncio does on shutdown), a new notifier sends the rest and nothing twice."""
    [(a, _), (b, _)] = await insert_citizens(api, 2)
    ids = sorted(await record_plain(api, a, 12) + await record_plain(api, b, 8, tag="b"))
    first = RecordingSender("sms")
    other = RecordingSender("push")
    stop = asyncio.Event()
    notifier = Notifier(api.services, [first, other], batch_size=50, concurrency=1)
    task = asyncio.create_task(notifier.run(stop, idle_sleep=0.01))

    def halt(sent: int) -> None:
        if sent == 7:
            stop.set() if how == "stop" else task.cancel()

    first.after_send = halt
    if how == "cancel":
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        await task
    assert 0 < len(first.sent) < len(ids)  # really stopped mid-batch
    recorded = {(i, c) for i, c, _ in await deliveries(api)}
    # What was sent is recorded, and nothing recorded was not sent.
    assert recorded == {(i, "sms") for i, _ in first.sent} | {(i, "push") for i, _ in other.sent}

    # A new notifier (a restarted process) with fresh senders finishes the work.
    again_first, again_other = RecordingSender("sms"), RecordingSender("push")
    await Notifier(api.services, [again_first, again_other], batch_size=50).run_once()
    for before, after in ((first, again_first), (other, again_other)):
        counts = Counter(i for i, _ in before.sent + after.sent)
        assert sorted(counts) == ids
        assert set(counts.values()) == {1}, counts
    assert await queued(api) == 0


async def test_a_crashed_notifiers_lease_is_taken_over_after_it_runs_out(api: Api) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    ids = await record_plain(api, account, 3)
    async with api.services.pool.acquire() as conn:  # a notifier leased them, then died
        await conn.execute(
            "UPDATE notification_pending SET leased_until = $1",
            api.clock.now + dt.timedelta(seconds=120),
        )
    sender = RecordingSender("sms")
    notifier = Notifier(api.services, [sender])
    await notifier.run_once()
    assert sender.sent == []  # the lease still holds
    api.clock.advance(121)
    await notifier.run_once()
    assert [i for i, _ in sender.sent] == ids


async def test_failed_sends_are_retried_later_with_backoff(api: Api) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    [nid] = await record_plain(api, account, 1)
    flaky = RecordingSender("sms", fail_first=2)
    steady = RecordingSender("log")
    notifier = Notifier(api.services, [flaky, steady])
    await notifier.run_once()
    assert (flaky.calls, steady.calls) == (1, 1)
    assert await deliveries(api) == [(nid, "log", "delivered")]
    await notifier.run_once()
    assert flaky.calls == 1  # backing off: not due yet
    api.clock.advance(3)
    await notifier.run_once()
    assert flaky.calls == 2  # failed again; the next wait is longer
    api.clock.advance(3)
    await notifier.run_once()
    assert flaky.calls == 2
    api.clock.advance(2)
    await notifier.run_once()
    assert (flaky.calls, steady.calls) == (3, 1)  # the delivered channel is not resent
    assert flaky.sent == [(nid, f"{nid}:sms")]
    assert await deliveries(api) == [(nid, "log", "delivered"), (nid, "sms", "delivered")]
    assert await queued(api) == 0
    sample = api.services.metrics.registry.get_sample_value
    assert (
        sample("fairseat_notifications_failed_total", {"channel": "sms", "outcome": "retry"}) == 2.0
    )


async def test_a_channel_gives_up_after_its_attempts(api: Api) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    [nid] = await record_plain(api, account, 1)
    broken = RecordingSender("sms", fail_first=100)
    notifier = Notifier(api.services, [broken], give_up_after=3)
    for _ in range(5):
        await notifier.run_once()
        api.clock.advance(3600)
    assert broken.calls == 3
    assert await deliveries(api) == [(nid, "sms", "failed")]
    assert await queued(api) == 0


async def test_reminders_fire_once_at_their_time_and_never_after_cancellation(api: Api) -> None:
    slot_id = await new_slot(api, hours_ahead=72)
    who = await citizen(api)
    kept = await hold(api, who, slot_id)
    await act(api, who, kept, "confirm")
    other = await citizen(api)
    dropped = await hold(api, other, slot_id)
    await act(api, other, dropped, "confirm")
    await persister(api).run_once()
    await act(api, other, dropped, "cancel")
    await persister(api).run_once()
    [live, cancelled] = sorted(await reminders(api), key=lambda r: r["cancelled_at"] is not None)
    assert live["subject"] == f"booking:{kept}" and cancelled["subject"] == f"booking:{dropped}"

    sender = RecordingSender("sms")
    notifier = Notifier(api.services, [sender])
    api.clock.now_ms = int(live["remind_at"].timestamp() * 1000) - 1000
    assert (await notifier.run_once()).reminders_fired == 0
    api.clock.advance(1)
    assert (await notifier.run_once()).reminders_fired == 1
    for _ in range(2):  # later passes, and a day later: nothing fires again
        api.clock.advance(86_400)
        assert (await notifier.run_once()).reminders_fired == 0
    reminder_notes = [n for n in await notes(api) if n[0] == "reminder"]
    assert reminder_notes == [("reminder", f"booking:{kept}", f"reminder:booking:{kept}:reminder")]
    assert ("reminder" in {k for k, _, _ in await notes(api, other["account_id"])}) is False
    assert sum(1 for i, _ in sender.sent) == len(await notes(api))  # the reminder was sent too


async def test_a_reminder_scheduled_through_the_contract_fires_and_cancels(api: Api) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    at = api.clock.now + dt.timedelta(hours=1)
    async with api.services.pool.acquire() as conn, conn.transaction():
        for name in ("x", "y"):
            assert await schedule_reminder(
                conn,
                account_id=account,
                subject=f"visit:{name}",
                remind_at=at,
                payload={"where": "门诊"},
                dedupe_key=f"visit:{name}:reminder",
            )
        assert await cancel_reminders(conn, subject="visit:y", at=api.clock.now) == 1
    api.clock.advance(3600)
    notifier = Notifier(api.services, [RecordingSender("sms")])
    assert (await notifier.run_once()).reminders_fired == 1
    async with api.services.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT subject, payload FROM notifications")
    assert row["subject"] == "visit:x"
    assert row["payload"] == {"where": "门诊"}  # an object, not a JSON string
