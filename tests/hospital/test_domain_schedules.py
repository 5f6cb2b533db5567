"""Hospital rules, pure: schedule rows, channel pools, cancellation, no-shows, offers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from reservation.domain.clock import CHINA
from reservation.domain.hospital import (
    HospitalPolicy,
    PublishedSession,
    check_schedules,
    day_end,
    may_cancel_registration,
    may_mark_no_show,
    offer_deadline,
    pools_for,
    reminder_at,
    session_release_at,
)

POLICY = HospitalPolicy()
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=CHINA)
DAY = dt.date(2026, 12, 5)


def raw(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "department_code": "cardio",
        "department_name": "Cardiology",
        "doctor_code": "dr-li",
        "doctor_name": "Dr Li",
        "title": "Chief physician",
        "fee_cny": "100",
        "day": DAY.isoformat(),
        "session": "morning",
        "start": "08:00",
        "end": "10:00",
        "slot_minutes": "30",
        "capacity": "5",
    }
    base.update(over)
    return base


def check(
    *rows: Mapping[str, object], published: tuple[PublishedSession, ...] = ()
) -> list[tuple[int, str]]:
    _, errors = check_schedules(
        list(enumerate(rows)), policy=POLICY, now=NOW, published=list(published)
    )
    return [(e.row, e.field) for e in errors]


def test_a_good_row_becomes_a_session_of_windows_with_the_counter_share() -> None:
    batch, errors = check_schedules([(0, raw())], policy=POLICY, now=NOW, published=[])
    assert errors == []
    session = batch.sessions[0]
    assert len(session.windows()) == 4
    assert session.windows()[0] == (
        dt.datetime(2026, 12, 5, 8, 0, tzinfo=CHINA),
        dt.datetime(2026, 12, 5, 8, 30, tzinfo=CHINA),
    )
    assert session.counter_capacity == 1  # 20 % of 5
    assert batch.doctors[0].fee_fen == 10_000


def test_every_bad_row_is_reported_at_once() -> None:
    errors = check(
        raw(capacity="0"),
        raw(doctor_code="dr-wang", day="2026-11-30"),
        raw(doctor_code="dr-zhao", start="8am"),
        raw(doctor_code="dr-qian", fee_cny="-1", colour="red"),
        raw(doctor_code="dr-sun", slot_minutes="45"),
        raw(doctor_code="dr-zhou", session="evening"),
    )
    assert errors == [
        (0, "capacity"),
        (1, "day"),
        (2, "start"),
        (3, "colour"),
        (3, "fee_cny"),
        (4, "slot_minutes"),
        (5, "session"),
    ]


def test_missing_required_columns_are_named() -> None:
    row = raw()
    del row["doctor_name"]
    del row["capacity"]
    assert check(row) == [(0, "capacity"), (0, "doctor_name")]


def test_overlapping_sessions_of_one_doctor_are_refused() -> None:
    errors = check(
        raw(),
        raw(session="afternoon", start="12:00", end="13:00"),
        raw(session="morning", start="09:00", end="11:00"),
    )
    assert errors == [(2, "session")]
    late_morning = raw(start="11:00", end="12:30", slot_minutes="30")
    early_afternoon = raw(session="afternoon", start="12:00", end="13:00")
    assert check(late_morning, early_afternoon) == [(1, "start")]


def test_counter_capacity_cannot_exceed_capacity() -> None:
    assert check(raw(counter_capacity="6")) == [(0, "counter_capacity")]


def test_conflicting_doctor_details_between_rows() -> None:
    errors = check(raw(), raw(session="afternoon", start="13:00", end="14:00", fee_cny="50"))
    assert errors == [(1, "doctor_code")]


def published(**over: object) -> PublishedSession:
    values: dict[str, object] = {
        "session_id": "hs1",
        "doctor_code": "dr-li",
        "day": DAY,
        "period": "morning",
        "starts_at": dt.datetime(2026, 12, 5, 8, 0, tzinfo=CHINA),
        "ends_at": dt.datetime(2026, 12, 5, 10, 0, tzinfo=CHINA),
        "slot_minutes": 30,
        "capacity": 5,
        "counter_capacity": 1,
        "status": "open",
    }
    values.update(over)
    return PublishedSession(**values)  # type: ignore[arg-type]


def test_republishing_an_identical_session_is_recognised() -> None:
    batch, errors = check_schedules([(0, raw())], policy=POLICY, now=NOW, published=[published()])
    assert errors == [] and batch.republished == {0: "hs1"}


def test_a_different_session_over_a_published_one_is_refused() -> None:
    assert check(raw(capacity="6"), published=(published(),)) == [(0, "session")]
    other = published(period="afternoon", starts_at=dt.datetime(2026, 12, 5, 9, 0, tzinfo=CHINA))
    assert check(raw(), published=(other,)) == [(0, "start")]


def test_sessions_open_at_the_daily_release_never_after_their_start() -> None:
    batch, _ = check_schedules([(0, raw())], policy=POLICY, now=NOW, published=[])
    assert session_release_at(batch.sessions[0], POLICY) == dt.datetime(
        2026, 11, 28, 7, 0, tzinfo=CHINA
    )


def test_cancellation_free_until_the_deadline_for_paid_registrations_only() -> None:
    before = dt.datetime(2026, 12, 4, 14, 59, tzinfo=CHINA)
    after = dt.datetime(2026, 12, 4, 15, 0, tzinfo=CHINA)
    assert may_cancel_registration(confirmed=True, day=DAY, now=before, policy=POLICY)
    assert not may_cancel_registration(confirmed=True, day=DAY, now=after, policy=POLICY)
    assert may_cancel_registration(confirmed=False, day=DAY, now=after, policy=POLICY)


def test_no_show_only_for_paid_registrations_once_their_time_began() -> None:
    start = dt.datetime(2026, 12, 5, 8, 0, tzinfo=CHINA)
    assert not may_mark_no_show(status="confirmed", starts_at=start, now=start - dt.timedelta(1))
    assert may_mark_no_show(status="confirmed", starts_at=start, now=start)
    assert not may_mark_no_show(status="checked_in", starts_at=start, now=start)
    assert not may_mark_no_show(status="held", starts_at=start, now=start)


def test_channels_and_pools() -> None:
    assert pools_for("online") == ("online",)
    assert pools_for("phone") == ("counter", "online")
    assert pools_for("onsite") == ("counter", "online")


def test_offers_reminders_and_day_ends() -> None:
    end = dt.datetime(2026, 12, 5, 8, 30, tzinfo=CHINA)
    assert offer_deadline(NOW, end, POLICY) == NOW + dt.timedelta(hours=2)
    late = dt.datetime(2026, 12, 5, 8, 10, tzinfo=CHINA)
    assert offer_deadline(late, end, POLICY) == end
    start = dt.datetime(2026, 12, 5, 8, 0, tzinfo=CHINA)
    assert reminder_at(start, NOW) == dt.datetime(2026, 12, 4, 8, 0, tzinfo=CHINA)
    assert reminder_at(start, dt.datetime(2026, 12, 4, 9, 0, tzinfo=CHINA)) is None
    assert day_end(DAY) == dt.datetime(2026, 12, 6, 0, 0, tzinfo=CHINA)
