"""Hospital registration rules (pure)."""

from __future__ import annotations

import datetime as dt

from reservation.domain.clock import CHINA
from reservation.domain.hospital import (
    HospitalPolicy,
    NoShow,
    Registration,
    bookable_days,
    cancel_deadline,
    check_daily_limits,
    may_cancel,
    release_at,
    standing,
)

POLICY = HospitalPolicy()
DAY = dt.date(2026, 12, 10)


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=CHINA)


def test_release_is_seven_days_ahead_at_seven() -> None:
    assert release_at(DAY, POLICY) == at(2026, 12, 3, 7, 0)


def test_bookable_days_before_and_after_the_daily_release() -> None:
    before = bookable_days(at(2026, 12, 3, 6, 59), POLICY)
    after = bookable_days(at(2026, 12, 3, 7, 0), POLICY)
    assert before[0] == dt.date(2026, 12, 3) and before[-1] == dt.date(2026, 12, 9)
    assert after[-1] == DAY
    assert len(after) == 8


def test_one_registration_per_department_per_day() -> None:
    existing = [Registration("cardiology", DAY)]
    refused = check_daily_limits(existing, Registration("cardiology", DAY), POLICY)
    assert refused is not None and refused.code == "department_limit"
    assert (
        check_daily_limits(existing, Registration("cardiology", DAY + dt.timedelta(1)), POLICY)
        is None
    )


def test_at_most_three_departments_per_day() -> None:
    existing = [Registration(d, DAY) for d in ("cardiology", "pediatrics", "dermatology")]
    refused = check_daily_limits(existing, Registration("ophthalmology", DAY), POLICY)
    assert refused is not None and refused.code == "daily_department_limit"
    assert check_daily_limits(existing[:2], Registration("ophthalmology", DAY), POLICY) is None


def test_cancellation_deadline_is_15_00_the_day_before() -> None:
    assert cancel_deadline(DAY, POLICY) == at(2026, 12, 9, 15, 0)
    assert may_cancel(DAY, at(2026, 12, 9, 14, 59), POLICY)
    assert not may_cancel(DAY, at(2026, 12, 9, 15, 0), POLICY)


def test_three_no_shows_in_90_days_suspend_for_30_days() -> None:
    shows = [NoShow(at(2026, 1, 1)), NoShow(at(2026, 2, 1)), NoShow(at(2026, 3, 31))]
    s = standing(shows, at(2026, 4, 1), POLICY)
    assert s.suspended_until == at(2026, 4, 30)
    assert s.suspended(at(2026, 4, 29, 23, 59))
    assert not s.suspended(at(2026, 4, 30))
    assert s.counted_no_shows == 3


def test_no_shows_spread_wider_than_the_window_do_not_suspend() -> None:
    shows = [NoShow(at(2026, 1, 1)), NoShow(at(2026, 2, 1)), NoShow(at(2026, 4, 2))]
    assert standing(shows, at(2026, 4, 3), POLICY).suspended_until is None


def test_an_upheld_appeal_removes_the_no_show() -> None:
    shows = [
        NoShow(at(2026, 1, 1)),
        NoShow(at(2026, 2, 1), appeal_upheld=True),
        NoShow(at(2026, 3, 1)),
    ]
    s = standing(shows, at(2026, 3, 2), POLICY)
    assert s.suspended_until is None
    assert s.counted_no_shows == 2


def test_a_past_suspension_is_not_reported() -> None:
    shows = [NoShow(at(2026, 1, 1)), NoShow(at(2026, 1, 2)), NoShow(at(2026, 1, 3))]
    assert standing(shows, at(2026, 6, 1), POLICY).suspended_until is None
