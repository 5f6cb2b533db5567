"""Hospital registration (挂号) rules, pure: release windows, per-patient daily limits,
cancellation deadlines, no-show penalties.

Always: a patient holds at most one registration per department per day, and registrations
in at most ``max_departments_per_day`` departments per day.
Always: a patient with ``no_show_limit`` no-shows within ``no_show_window`` is suspended
for ``suspension``, counted from the last of those no-shows; an upheld appeal removes a
no-show from the count.
Only before the deadline (default 15:00 the day before) may a registration be cancelled;
after it the patient is expected to come (or be recorded as a no-show).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reservation.domain.clock import CHINA


@dataclass(frozen=True, slots=True)
class HospitalPolicy:
    release_time: dt.time = dt.time(7, 0)
    days_ahead: int = 7
    max_departments_per_day: int = 3
    cancel_deadline_days_before: int = 1
    cancel_deadline_time: dt.time = dt.time(15, 0)
    no_show_limit: int = 3
    no_show_window: dt.timedelta = dt.timedelta(days=90)
    suspension: dt.timedelta = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Registration:
    """A live (held or confirmed) registration of one patient."""

    department: str
    day: dt.date


@dataclass(frozen=True, slots=True)
class NoShow:
    at: dt.datetime
    appeal_upheld: bool = False


@dataclass(frozen=True, slots=True)
class DailyLimitViolation:
    code: str
    message: str


def release_at(day: dt.date, policy: HospitalPolicy) -> dt.datetime:
    """When slots of ``day`` become bookable: ``days_ahead`` days before, at release time."""
    opens = day - dt.timedelta(days=policy.days_ahead)
    return dt.datetime.combine(opens, policy.release_time, tzinfo=CHINA)


def bookable_days(now: dt.datetime, policy: HospitalPolicy) -> list[dt.date]:
    """The days a patient can book at ``now``: today's release has happened or not."""
    local = now.astimezone(CHINA)
    last = local.date() + dt.timedelta(days=policy.days_ahead)
    if local.time() < policy.release_time:
        last -= dt.timedelta(days=1)
    return [local.date() + dt.timedelta(days=i) for i in range((last - local.date()).days + 1)]


def check_daily_limits(
    existing: Iterable[Registration], wanted: Registration, policy: HospitalPolicy
) -> DailyLimitViolation | None:
    """Whether one more registration is allowed for this patient on that day."""
    same_day = [r for r in existing if r.day == wanted.day]
    if any(r.department == wanted.department for r in same_day):
        return DailyLimitViolation("department_limit", "One registration per department per day.")
    departments = {r.department for r in same_day}
    if len(departments) >= policy.max_departments_per_day:
        return DailyLimitViolation(
            "daily_department_limit",
            f"At most {policy.max_departments_per_day} departments per day.",
        )
    return None


def cancel_deadline(day: dt.date, policy: HospitalPolicy) -> dt.datetime:
    before = day - dt.timedelta(days=policy.cancel_deadline_days_before)
    return dt.datetime.combine(before, policy.cancel_deadline_time, tzinfo=CHINA)


def may_cancel(day: dt.date, now: dt.datetime, policy: HospitalPolicy) -> bool:
    return now < cancel_deadline(day, policy)


@dataclass(frozen=True, slots=True)
class Standing:
    """A patient's booking standing, shown to them (no hidden penalties)."""

    counted_no_shows: int
    suspended_until: dt.datetime | None
    no_shows: Sequence[NoShow] = field(default_factory=tuple)

    def suspended(self, now: dt.datetime) -> bool:
        return self.suspended_until is not None and now < self.suspended_until


def standing(no_shows: Iterable[NoShow], now: dt.datetime, policy: HospitalPolicy) -> Standing:
    """Counts no-shows (appeals upheld do not count) and derives any suspension.

    A suspension starts at the no-show that reached the limit within the window and
    lasts ``suspension``; it is reported while it runs.
    """
    counted = sorted(n.at for n in no_shows if not n.appeal_upheld)
    suspended_until: dt.datetime | None = None
    for i in range(policy.no_show_limit - 1, len(counted)):
        first, last = counted[i - policy.no_show_limit + 1], counted[i]
        if last - first <= policy.no_show_window:
            until = last + policy.suspension
            if suspended_until is None or until > suspended_until:
                suspended_until = until
    recent = [t for t in counted if now - t <= policy.no_show_window]
    if suspended_until is not None and suspended_until <= now:
        suspended_until = None
    return Standing(len(recent), suspended_until, tuple(no_shows))
