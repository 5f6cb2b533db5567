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
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

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
    # Share of each window kept for the phone and on-site channels (elderly citizens).
    counter_share_percent: int = 20
    # How long a place offered after a session cancellation or from standby stays held.
    offer_hold: dt.timedelta = dt.timedelta(hours=2)


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


# Publishing schedules -----------------------------------------------------------------
# Always: a batch is all or nothing, and every offending row is reported at once.
# Only once: a session identical to a published one (same doctor, day, period, times,
# window length and capacities) is the same session, so republishing a batch is safe.

SCHEDULE_COLUMNS = (
    "department_code",
    "department_name",
    "doctor_code",
    "doctor_name",
    "title",
    "specialty",
    "fee_cny",
    "day",
    "session",
    "start",
    "end",
    "slot_minutes",
    "capacity",
    "counter_capacity",
)
OPTIONAL_COLUMNS = frozenset({"specialty", "counter_capacity"})
PERIODS = ("morning", "afternoon")
NOON = dt.time(12, 0)
MAX_WINDOW_CAPACITY = 500
MAX_DAYS_AHEAD = 60
_CODE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_HHMM = re.compile(r"\A([01]\d|2[0-3]):([0-5]\d)\Z")


@dataclass(frozen=True, slots=True)
class DepartmentDraft:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class DoctorDraft:
    code: str
    name: str
    department_code: str
    title: str
    specialty: str
    fee_fen: int


@dataclass(frozen=True, slots=True)
class SessionDraft:
    row: int
    doctor_code: str
    day: dt.date
    period: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    slot_minutes: int
    capacity: int  # per window, both channels
    counter_capacity: int  # per window, kept for phone and on-site

    def key(self) -> tuple[str, dt.date, str]:
        return (self.doctor_code, self.day, self.period)

    def windows(self) -> list[tuple[dt.datetime, dt.datetime]]:
        step = dt.timedelta(minutes=self.slot_minutes)
        out, at = [], self.starts_at
        while at < self.ends_at:
            out.append((at, at + step))
            at += step
        return out


@dataclass(frozen=True, slots=True)
class PublishedSession:
    session_id: str
    doctor_code: str
    day: dt.date
    period: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    slot_minutes: int
    capacity: int
    counter_capacity: int
    status: str


@dataclass(frozen=True, slots=True)
class ScheduleError:
    row: int
    field: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class ScheduleBatch:
    departments: list[DepartmentDraft]
    doctors: list[DoctorDraft]
    sessions: list[SessionDraft]
    republished: dict[int, str]  # row -> id of the identical published session


def _text(raw: Mapping[str, object], name: str) -> str:
    value = raw.get(name)
    return "" if value is None else str(value).strip()


def _parse_row(
    row: int, raw: Mapping[str, object], policy: HospitalPolicy, errors: list[ScheduleError]
) -> tuple[DepartmentDraft, DoctorDraft, SessionDraft] | None:
    bad = len(errors)

    def fail(name: str, message: str) -> None:
        errors.append(ScheduleError(row, name, message))

    unknown = sorted(set(raw) - set(SCHEDULE_COLUMNS))
    for name in unknown:
        fail(name, "unknown column")
    for name in SCHEDULE_COLUMNS:
        if name not in OPTIONAL_COLUMNS and not _text(raw, name):
            fail(name, "is required")
    for name in ("department_code", "doctor_code"):
        value = _text(raw, name)
        if value and not _CODE.match(value):
            fail(name, "letters, digits and . _ - only (at most 64)")
    for name in ("department_name", "doctor_name", "title", "specialty"):
        if len(_text(raw, name)) > 200:
            fail(name, "at most 200 characters")
    fee_fen = 0
    if fee := _text(raw, "fee_cny"):
        try:
            amount = Decimal(fee)
            if not amount.is_finite() or amount < 0 or amount > 10_000:
                raise InvalidOperation
            if amount != amount.quantize(Decimal("0.01")):
                raise InvalidOperation
            fee_fen = int(amount * 100)
        except InvalidOperation:
            fail("fee_cny", "an amount in yuan between 0 and 10000, at most 2 decimals")
    day: dt.date | None = None
    if text := _text(raw, "day"):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            fail("day", "a date as YYYY-MM-DD")
    period = _text(raw, "session")
    if period and period not in PERIODS:
        fail("session", "morning or afternoon")
    times: dict[str, dt.time] = {}
    for name in ("start", "end"):
        text = _text(raw, name)
        if text and (m := _HHMM.match(text)):
            times[name] = dt.time(int(m.group(1)), int(m.group(2)))
        elif text:
            fail(name, "a time as HH:MM")
    numbers: dict[str, int] = {}
    for name, low, high in (
        ("slot_minutes", 5, 240),
        ("capacity", 1, MAX_WINDOW_CAPACITY),
        ("counter_capacity", 0, MAX_WINDOW_CAPACITY),
    ):
        text = _text(raw, name)
        if not text:
            continue
        try:
            number = int(text)
        except ValueError:
            fail(name, "a whole number")
            continue
        if not low <= number <= high:
            fail(name, f"must be between {low} and {high}")
        else:
            numbers[name] = number
    if "start" in times and "end" in times:
        if times["end"] <= times["start"]:
            fail("end", "must be after start")
        elif "slot_minutes" in numbers:
            length = (times["end"].hour * 60 + times["end"].minute) - (
                times["start"].hour * 60 + times["start"].minute
            )
            if length % numbers["slot_minutes"]:
                fail("slot_minutes", "the session must divide into whole windows")
        if period == "morning" and times["start"] >= NOON:
            fail("start", "a morning session starts before 12:00")
        if period == "afternoon" and times["start"] < NOON:
            fail("start", "an afternoon session starts at 12:00 or later")
    capacity = numbers.get("capacity")
    counter = numbers.get("counter_capacity")
    if capacity is not None and counter is not None and counter > capacity:
        fail("counter_capacity", "must not exceed capacity")
    if len(errors) > bad or day is None or capacity is None:
        return None
    if counter is None:
        counter = capacity * policy.counter_share_percent // 100
    department = DepartmentDraft(_text(raw, "department_code"), _text(raw, "department_name"))
    doctor = DoctorDraft(
        _text(raw, "doctor_code"),
        _text(raw, "doctor_name"),
        department.code,
        _text(raw, "title"),
        _text(raw, "specialty"),
        fee_fen,
    )
    session = SessionDraft(
        row=row,
        doctor_code=doctor.code,
        day=day,
        period=period,
        starts_at=dt.datetime.combine(day, times["start"], tzinfo=CHINA),
        ends_at=dt.datetime.combine(day, times["end"], tzinfo=CHINA),
        slot_minutes=numbers["slot_minutes"],
        capacity=capacity,
        counter_capacity=counter,
    )
    return department, doctor, session


def _same_session(d: SessionDraft, p: PublishedSession) -> bool:
    return (
        d.starts_at == p.starts_at
        and d.ends_at == p.ends_at
        and d.slot_minutes == p.slot_minutes
        and d.capacity == p.capacity
        and d.counter_capacity == p.counter_capacity
    )


def check_schedules(
    rows: Sequence[tuple[int, Mapping[str, object]]],
    *,
    policy: HospitalPolicy,
    now: dt.datetime,
    published: Sequence[PublishedSession],
    known_doctors: Mapping[str, DoctorDraft] | None = None,
) -> tuple[ScheduleBatch, list[ScheduleError]]:
    """Parse and check a batch of schedule rows ``(row number, raw columns)``.

    Returns the batch and every error found (sorted by row); publish only without errors.
    ``published``: the sessions already published for the batch's doctors and days.
    ``known_doctors``: the hospital's doctors as published before (a row may not move a
    doctor to another department).
    """
    errors: list[ScheduleError] = []
    if not rows:
        errors.append(ScheduleError(0, "rows", "at least one schedule row is required"))
    departments: dict[str, DepartmentDraft] = {}
    doctors: dict[str, DoctorDraft] = {}
    sessions: list[SessionDraft] = []
    first_row: dict[str, int] = {}
    for row, raw in rows:
        parsed = _parse_row(row, raw, policy, errors)
        if parsed is None:
            continue
        department, doctor, session = parsed
        seen_dep = departments.setdefault(department.code, department)
        if seen_dep != department:
            errors.append(
                ScheduleError(
                    row, "department_name", f"differs from row {first_row[department.code]}"
                )
            )
        first_row.setdefault(department.code, row)
        seen_doc = doctors.setdefault(doctor.code, doctor)
        if seen_doc != doctor:
            errors.append(
                ScheduleError(
                    row, "doctor_code", f"doctor details differ from row {first_row[doctor.code]}"
                )
            )
        first_row.setdefault(doctor.code, row)
        before = (known_doctors or {}).get(doctor.code)
        if before is not None and before.department_code != doctor.department_code:
            errors.append(
                ScheduleError(row, "department_code", f"the doctor is in {before.department_code}")
            )
        if session.starts_at <= now:
            errors.append(ScheduleError(row, "day", "the session starts in the past"))
        elif session.day > now.astimezone(CHINA).date() + dt.timedelta(days=MAX_DAYS_AHEAD):
            errors.append(ScheduleError(row, "day", f"at most {MAX_DAYS_AHEAD} days ahead"))
        sessions.append(session)

    republished: dict[int, str] = {}
    by_doctor_day: dict[tuple[str, dt.date], list[SessionDraft]] = defaultdict(list)
    for s in sessions:
        by_doctor_day[(s.doctor_code, s.day)].append(s)
    published_by: dict[tuple[str, dt.date], list[PublishedSession]] = defaultdict(list)
    for p in published:
        if p.status == "open":
            published_by[(p.doctor_code, p.day)].append(p)
    for key, group in by_doctor_day.items():
        group.sort(key=lambda s: (s.starts_at, s.row))
        for i, cur in enumerate(group):
            for prev in group[:i]:
                if prev.period == cur.period:
                    errors.append(
                        ScheduleError(cur.row, "session", f"repeats row {prev.row}'s session")
                    )
                elif cur.starts_at < prev.ends_at:
                    errors.append(ScheduleError(cur.row, "start", f"overlaps row {prev.row}"))
            for p in published_by.get(key, ()):
                if p.period == cur.period and _same_session(cur, p):
                    republished[cur.row] = p.session_id
                elif p.period == cur.period:
                    errors.append(
                        ScheduleError(
                            cur.row, "session", f"already published differently ({p.session_id})"
                        )
                    )
                elif cur.starts_at < p.ends_at and p.starts_at < cur.ends_at:
                    errors.append(
                        ScheduleError(cur.row, "start", f"overlaps session {p.session_id}")
                    )
    errors.sort(key=lambda e: (e.row, e.field))
    batch = ScheduleBatch(list(departments.values()), list(doctors.values()), sessions, republished)
    return batch, errors


def session_release_at(draft: SessionDraft, policy: HospitalPolicy) -> dt.datetime:
    """When a session's slots open: the hospital's daily release, never after the start."""
    return min(release_at(draft.day, policy), draft.starts_at)


# Registrations -------------------------------------------------------------------------


def day_end(day: dt.date) -> dt.datetime:
    """A confirmed registration counts in the patient's day gate until the day is over."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=CHINA)


def reminder_at(
    starts_at: dt.datetime, now: dt.datetime, lead: dt.timedelta = dt.timedelta(days=1)
) -> dt.datetime | None:
    """The day-before reminder: ``lead`` before the appointment (the notifier's setting, so
    the generic booking reminder and this one are the same); None when that has passed."""
    at = starts_at - lead
    return at if at > now else None


def offer_deadline(now: dt.datetime, ends_at: dt.datetime, policy: HospitalPolicy) -> dt.datetime:
    """How long an offered place stays held: the offer period, never past the window's end
    (a place freed by a no-show mid-session may still be used before the window closes)."""
    return min(now + policy.offer_hold, ends_at)


def may_cancel_registration(
    *, confirmed: bool, day: dt.date, now: dt.datetime, policy: HospitalPolicy
) -> bool:
    """An unpaid hold may always be dropped; a paid registration only before the deadline.
    After it, cancelling is refused (not penalised): the patient comes, or is a no-show."""
    return not confirmed or may_cancel(day, now, policy)


def may_mark_no_show(*, status: str, starts_at: dt.datetime, now: dt.datetime) -> bool:
    """Only a paid registration that was not checked in, once its window has begun."""
    return status == "confirmed" and now >= starts_at


CHANNELS = ("online", "phone", "onsite")


def pools_for(channel: str) -> tuple[str, ...]:
    """Which channel pools a booking channel may take: the app only the online pool; phone
    and on-site bookings (staff, for walk-ins and callers) the kept share first, then the
    online pool like anyone else."""
    return ("online",) if channel == "online" else ("counter", "online")
