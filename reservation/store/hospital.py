"""Hospital registration in Postgres (issue 6): catalogue, sessions, registrations,
no-shows and appeals, standby. Thin: every rule lives in ``reservation.domain.hospital``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from reservation.domain.hospital import DoctorDraft, HospitalPolicy, NoShow, PublishedSession

# Policy -----------------------------------------------------------------------------------


async def get_policy(conn: Any, provider_id: str) -> HospitalPolicy:
    row = await conn.fetchrow("SELECT * FROM hospital_policies WHERE provider_id = $1", provider_id)
    if row is None:
        return HospitalPolicy()
    return HospitalPolicy(
        release_time=row["release_time"],
        days_ahead=row["days_ahead"],
        cancel_deadline_days_before=row["cancel_deadline_days_before"],
        cancel_deadline_time=row["cancel_deadline_time"],
        counter_share_percent=row["counter_share_percent"],
        offer_hold=dt.timedelta(minutes=row["offer_hold_minutes"]),
    )


async def put_policy(conn: Any, provider_id: str, policy: HospitalPolicy) -> None:
    await conn.execute(
        """INSERT INTO hospital_policies (provider_id, release_time, days_ahead,
               cancel_deadline_days_before, cancel_deadline_time, counter_share_percent,
               offer_hold_minutes)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (provider_id) DO UPDATE SET
               release_time = EXCLUDED.release_time, days_ahead = EXCLUDED.days_ahead,
               cancel_deadline_days_before = EXCLUDED.cancel_deadline_days_before,
               cancel_deadline_time = EXCLUDED.cancel_deadline_time,
               counter_share_percent = EXCLUDED.counter_share_percent,
               offer_hold_minutes = EXCLUDED.offer_hold_minutes, updated_at = now()""",
        provider_id,
        policy.release_time,
        policy.days_ahead,
        policy.cancel_deadline_days_before,
        policy.cancel_deadline_time,
        policy.counter_share_percent,
        int(policy.offer_hold.total_seconds() // 60),
    )


# Catalogue ----------------------------------------------------------------------------------


async def list_hospitals(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT p.id, p.name, count(d.id) AS departments
           FROM providers p LEFT JOIN hospital_departments d ON d.provider_id = p.id
           WHERE p.kind = 'hospital' GROUP BY p.id, p.name ORDER BY p.id"""
    )
    return [dict(r) for r in rows]


async def list_departments(conn: Any, provider_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT d.id, d.code, d.name, count(doc.id) AS doctors
           FROM hospital_departments d LEFT JOIN hospital_doctors doc ON doc.department_id = d.id
           WHERE d.provider_id = $1 GROUP BY d.id ORDER BY d.code""",
        provider_id,
    )
    return [dict(r) for r in rows]


async def get_department(conn: Any, department_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM hospital_departments WHERE id = $1", department_id)
    return dict(row) if row is not None else None


async def list_doctors(conn: Any, department_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM hospital_doctors WHERE department_id = $1 ORDER BY fee_fen DESC, code",
        department_id,
    )
    return [dict(r) for r in rows]


async def get_doctor(conn: Any, doctor_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM hospital_doctors WHERE id = $1", doctor_id)
    return dict(row) if row is not None else None


async def known_doctors(conn: Any, provider_id: str) -> dict[str, tuple[str, DoctorDraft]]:
    """code -> (doctor id, details as published)."""
    rows = await conn.fetch(
        """SELECT doc.*, d.code AS department_code FROM hospital_doctors doc
           JOIN hospital_departments d ON d.id = doc.department_id WHERE doc.provider_id = $1""",
        provider_id,
    )
    return {
        r["code"]: (
            r["id"],
            DoctorDraft(
                r["code"], r["name"], r["department_code"], r["title"], r["specialty"], r["fee_fen"]
            ),
        )
        for r in rows
    }


async def upsert_department(conn: Any, dep_id: str, provider_id: str, code: str, name: str) -> str:
    dep: str = await conn.fetchval(
        """INSERT INTO hospital_departments (id, provider_id, code, name) VALUES ($1, $2, $3, $4)
           ON CONFLICT (provider_id, code) DO UPDATE SET name = EXCLUDED.name RETURNING id""",
        dep_id,
        provider_id,
        code,
        name,
    )
    return dep


async def upsert_doctor(
    conn: Any,
    *,
    doctor_id: str,
    provider_id: str,
    department_id: str,
    draft: DoctorDraft,
    online_resource_id: str,
    counter_resource_id: str,
) -> str:
    doc: str = await conn.fetchval(
        """INSERT INTO hospital_doctors (id, provider_id, department_id, code, name, title,
               specialty, fee_fen, online_resource_id, counter_resource_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (provider_id, code) DO UPDATE SET name = EXCLUDED.name,
               title = EXCLUDED.title, specialty = EXCLUDED.specialty, fee_fen = EXCLUDED.fee_fen
           RETURNING id""",
        doctor_id,
        provider_id,
        department_id,
        draft.code,
        draft.name,
        draft.title,
        draft.specialty,
        draft.fee_fen,
        online_resource_id,
        counter_resource_id,
    )
    return doc


async def published_sessions(
    conn: Any, provider_id: str, doctor_codes: Sequence[str], days: Sequence[dt.date]
) -> list[PublishedSession]:
    rows = await conn.fetch(
        """SELECT s.*, doc.code AS doctor_code FROM hospital_sessions s
           JOIN hospital_doctors doc ON doc.id = s.doctor_id
           WHERE s.provider_id = $1 AND doc.code = ANY($2::text[]) AND s.day = ANY($3::date[])""",
        provider_id,
        list(doctor_codes),
        list(days),
    )
    return [
        PublishedSession(
            r["id"],
            r["doctor_code"],
            r["day"],
            r["period"],
            r["starts_at"],
            r["ends_at"],
            r["slot_minutes"],
            r["capacity"],
            r["counter_capacity"],
            r["status"],
        )
        for r in rows
    ]


async def insert_session(conn: Any, values: tuple[Any, ...]) -> None:
    """values: (id, provider, doctor, department, day, period, starts, ends, slot_minutes,
    capacity, counter_capacity, release_at)."""
    await conn.execute(
        """INSERT INTO hospital_sessions (id, provider_id, doctor_id, department_id, day, period,
               starts_at, ends_at, slot_minutes, capacity, counter_capacity, release_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
        *values,
    )


async def insert_hospital_slots(conn: Any, rows: Sequence[tuple[str, str, str, Any]]) -> None:
    """rows: (slot id, session id, channel, starts_at)."""
    await conn.executemany(
        "INSERT INTO hospital_slots (slot_id, session_id, channel, starts_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (slot_id) DO NOTHING",
        rows,
    )


async def session_slots(conn: Any, session_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT hs.slot_id, hs.channel, s.starts_at, s.ends_at, s.capacity FROM hospital_slots hs
           JOIN slots s ON s.id = hs.slot_id WHERE hs.session_id = $1
           ORDER BY s.starts_at, hs.channel""",
        session_id,
    )
    return [dict(r) for r in rows]


async def doctor_slots(conn: Any, doctor_id: str, day: dt.date | None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT hs.slot_id, hs.channel, s.starts_at, s.ends_at, s.capacity, s.release_at,
                  ses.id AS session_id, ses.period, ses.day, ses.status AS session_status
           FROM hospital_sessions ses JOIN hospital_slots hs ON hs.session_id = ses.id
           JOIN slots s ON s.id = hs.slot_id
           WHERE ses.doctor_id = $1 AND ($2::date IS NULL OR ses.day = $2)
           ORDER BY s.starts_at, hs.channel LIMIT 500""",
        doctor_id,
        day,
    )
    return [dict(r) for r in rows]


async def slot_context(conn: Any, slot_id: str) -> dict[str, Any] | None:
    """Everything a registration needs to know about a slot, or None if not a hospital's."""
    row = await conn.fetchrow(
        """SELECT s.id AS slot_id, s.starts_at, s.ends_at, s.release_at, hs.channel,
                  ses.id AS session_id, ses.status AS session_status, ses.day, ses.period,
                  ses.provider_id, ses.department_id, ses.doctor_id,
                  doc.name AS doctor_name, doc.fee_fen, d.name AS department_name,
                  p.name AS hospital_name
           FROM hospital_slots hs JOIN slots s ON s.id = hs.slot_id
           JOIN hospital_sessions ses ON ses.id = hs.session_id
           JOIN hospital_doctors doc ON doc.id = ses.doctor_id
           JOIN hospital_departments d ON d.id = ses.department_id
           JOIN providers p ON p.id = ses.provider_id
           WHERE hs.slot_id = $1""",
        slot_id,
    )
    return dict(row) if row is not None else None


async def alternative_slots(
    conn: Any,
    *,
    department_id: str,
    from_day: dt.date,
    exclude_session: str,
    channels: Sequence[str],
    now: dt.datetime,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Released, open slots of the department from ``from_day`` on, earliest first."""
    rows = await conn.fetch(
        """SELECT hs.slot_id, hs.channel, s.starts_at FROM hospital_sessions ses
           JOIN hospital_slots hs ON hs.session_id = ses.id JOIN slots s ON s.id = hs.slot_id
           WHERE ses.department_id = $1 AND ses.day >= $2 AND ses.id <> $3
             AND ses.status = 'open' AND hs.channel = ANY($4::text[])
             AND s.starts_at > $5 AND s.release_at <= $5
           ORDER BY s.starts_at, hs.channel LIMIT $6""",
        department_id,
        from_day,
        exclude_session,
        list(channels),
        now,
        limit,
    )
    return [dict(r) for r in rows]


async def cancel_session_row(
    conn: Any, session_id: str, at: dt.datetime, reason: str
) -> dict[str, Any] | None:
    """Marks the session and its slots cancelled; returns the session (None if unknown)."""
    row = await conn.fetchrow(
        """UPDATE hospital_sessions SET status = 'cancelled',
               cancelled_at = COALESCE(cancelled_at, $2),
               cancel_reason = COALESCE(cancel_reason, $3)
           WHERE id = $1 RETURNING *""",
        session_id,
        at,
        reason,
    )
    if row is None:
        return None
    await conn.execute(
        """UPDATE slots SET status = 'cancelled'
           WHERE id IN (SELECT slot_id FROM hospital_slots WHERE session_id = $1)""",
        session_id,
    )
    return dict(row)


async def get_session(conn: Any, session_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM hospital_sessions WHERE id = $1", session_id)
    return dict(row) if row is not None else None


# Registrations ------------------------------------------------------------------------------

_REG_COLUMNS = """r.*, s.ends_at, doc.name AS doctor_name, doc.title AS doctor_title,
    doc.fee_fen, d.name AS department_name, p.name AS hospital_name, a.name AS patient_name,
    a.id_masked, b.state AS booking_state"""
_REG_FROM = """hospital_registrations r JOIN slots s ON s.id = r.slot_id
    JOIN hospital_doctors doc ON doc.id = r.doctor_id
    JOIN hospital_departments d ON d.id = r.department_id
    JOIN providers p ON p.id = r.provider_id JOIN accounts a ON a.id = r.account_id
    LEFT JOIN bookings b ON b.id = r.id"""


async def insert_registration(conn: Any, values: dict[str, Any]) -> bool:
    """Idempotent (a retried hold): False when the registration already existed."""
    columns = list(values)
    placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
    done = await conn.fetchval(
        f"INSERT INTO hospital_registrations ({', '.join(columns)}) VALUES ({placeholders})"
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        *values.values(),
    )
    return done is not None


async def get_registration(conn: Any, registration_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_REG_COLUMNS} FROM {_REG_FROM} WHERE r.id = $1", registration_id
    )
    return dict(row) if row is not None else None


async def lock_registration(conn: Any, registration_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM hospital_registrations WHERE id = $1 FOR UPDATE", registration_id
    )
    return dict(row) if row is not None else None


async def set_status(
    conn: Any,
    registration_id: str,
    status: str,
    at: dt.datetime,
    *,
    reason: str | None = None,
) -> None:
    """Moves a registration on; the time column that goes with the new status is set."""
    column = {
        "confirmed": "confirmed_at",
        "checked_in": "checked_in_at",
        "cancelled": "ended_at",
        "no_show": "ended_at",
    }[status]
    await conn.execute(
        f"UPDATE hospital_registrations SET status = $2, {column} = COALESCE({column}, $3),"
        " end_reason = COALESCE(end_reason, $4) WHERE id = $1",
        registration_id,
        status,
        at,
        reason,
    )


async def list_for_account(conn: Any, account_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_REG_COLUMNS} FROM {_REG_FROM} WHERE r.account_id = $1"
        " ORDER BY r.starts_at DESC LIMIT 200",
        account_id,
    )
    return [dict(r) for r in rows]


async def list_for_provider_day(conn: Any, provider_id: str, day: dt.date) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_REG_COLUMNS} FROM {_REG_FROM} WHERE r.provider_id = $1 AND r.day = $2"
        " ORDER BY r.starts_at, r.created_at",
        provider_id,
        day,
    )
    return [dict(r) for r in rows]


async def find_by_code(conn: Any, provider_id: str, day: dt.date, code: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT id FROM hospital_registrations"
        " WHERE provider_id = $1 AND day = $2 AND verification_code = $3",
        provider_id,
        day,
        code,
    )
    return found


async def live_in_session(conn: Any, session_id: str, now: dt.datetime) -> list[dict[str, Any]]:
    """Paid registrations, and unpaid holds before their deadline (an expired hold was
    abandoned: it gets no offer)."""
    rows = await conn.fetch(
        """SELECT * FROM hospital_registrations
           WHERE session_id = $1
             AND (status = 'confirmed' OR (status = 'held' AND hold_deadline > $2))
           ORDER BY created_at""",
        session_id,
        now,
    )
    return [dict(r) for r in rows]


# No-shows and appeals ---------------------------------------------------------------------


async def insert_no_show(
    conn: Any, *, registration_id: str, account_id: str, person: str, at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO hospital_no_shows (registration_id, account_id, person_hmac, at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (registration_id) DO NOTHING",
        registration_id,
        account_id,
        person,
        at,
    )


async def no_shows_of(conn: Any, person: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM hospital_no_shows WHERE person_hmac = $1 ORDER BY at", person
    )
    return [dict(r) for r in rows]


def as_no_shows(rows: Sequence[dict[str, Any]]) -> list[NoShow]:
    return [NoShow(r["at"], appeal_upheld=r["appeal_status"] == "upheld") for r in rows]


async def lock_no_show(conn: Any, registration_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM hospital_no_shows WHERE registration_id = $1 FOR UPDATE", registration_id
    )
    return dict(row) if row is not None else None


async def file_appeal(conn: Any, registration_id: str, reason: str, at: dt.datetime) -> None:
    await conn.execute(
        "UPDATE hospital_no_shows SET appeal_status = 'pending', appeal_reason = $2,"
        " appeal_filed_at = $3 WHERE registration_id = $1",
        registration_id,
        reason,
        at,
    )


async def resolve_appeal(
    conn: Any, registration_id: str, upheld: bool, note: str, at: dt.datetime
) -> None:
    await conn.execute(
        "UPDATE hospital_no_shows SET appeal_status = $2, resolution_note = $3, resolved_at = $4"
        " WHERE registration_id = $1",
        registration_id,
        "upheld" if upheld else "rejected",
        note,
        at,
    )


async def pending_appeals(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM hospital_no_shows WHERE appeal_status = 'pending' ORDER BY appeal_filed_at"
    )
    return [dict(r) for r in rows]


# Standby ------------------------------------------------------------------------------------


async def join_standby(
    conn: Any,
    *,
    account_id: str,
    person: str,
    provider_id: str,
    department_id: str,
    day: dt.date,
    at: dt.datetime,
    last_day: dt.date | None = None,
    doctor_id: str | None = None,
    deadline: dt.datetime | None = None,
) -> tuple[int, bool]:
    """(standby id, created); joining twice with the same request returns the entry."""
    last = last_day or day
    row = await conn.fetchrow(
        """INSERT INTO hospital_standby (account_id, person_hmac, provider_id, department_id,
               day, created_at, last_day, doctor_id, deadline)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (person_hmac, department_id, day, last_day, (COALESCE(doctor_id, '')))
           WHERE status = 'waiting' DO NOTHING
           RETURNING id""",
        account_id,
        person,
        provider_id,
        department_id,
        day,
        at,
        last,
        doctor_id,
        deadline,
    )
    if row is not None:
        return int(row["id"]), True
    existing = await conn.fetchval(
        "SELECT id FROM hospital_standby WHERE person_hmac = $1 AND department_id = $2"
        " AND day = $3 AND last_day = $4 AND COALESCE(doctor_id, '') = COALESCE($5, '')"
        " AND status = 'waiting'",
        person,
        department_id,
        day,
        last,
        doctor_id,
    )
    return int(existing), False


# The place in line: waiting entries of the department, joined earlier, whose days overlap
# this one's (the first of them is served first when a place of a shared day frees up).
_POSITION = """CASE WHEN sb.status = 'waiting' THEN (
                   SELECT count(*) FROM hospital_standby o
                   WHERE o.department_id = sb.department_id AND o.status = 'waiting'
                     AND o.day <= sb.last_day AND o.last_day >= sb.day AND o.id <= sb.id)
               END AS position"""


async def standby_of_account(conn: Any, account_id: str) -> list[dict[str, Any]]:
    """Every standby entry of the account, with its position among those still waiting."""
    rows = await conn.fetch(
        f"""SELECT sb.*, d.name AS department_name, p.name AS hospital_name,
                  doc.name AS doctor_name, {_POSITION}
           FROM hospital_standby sb JOIN hospital_departments d ON d.id = sb.department_id
           JOIN providers p ON p.id = sb.provider_id
           LEFT JOIN hospital_doctors doc ON doc.id = sb.doctor_id
           WHERE sb.account_id = $1 ORDER BY sb.id DESC LIMIT 100""",
        account_id,
    )
    return [dict(r) for r in rows]


async def end_standby(
    conn: Any, standby_id: int, status: str, at: dt.datetime, registration_id: str | None = None
) -> bool:
    done = await conn.fetchval(
        "UPDATE hospital_standby SET status = $2, ended_at = $3, registration_id = $4"
        " WHERE id = $1 AND status = 'waiting' RETURNING id",
        standby_id,
        status,
        at,
        registration_id,
    )
    return done is not None


async def get_standby(conn: Any, standby_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM hospital_standby WHERE id = $1", standby_id)
    return dict(row) if row is not None else None


async def next_standby(
    conn: Any,
    department_id: str,
    day: dt.date,
    doctor_id: str | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The waiting entries that want a place of this doctor and day, in order, locked:
    two freed places never go to one patient."""
    rows = await conn.fetch(
        """SELECT * FROM hospital_standby WHERE department_id = $1
             AND day <= $2 AND last_day >= $2 AND status = 'waiting'
             AND ($3::text IS NULL OR doctor_id IS NULL OR doctor_id = $3)
             AND ($4::timestamptz IS NULL OR deadline IS NULL OR deadline > $4)
           ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED""",
        department_id,
        day,
        doctor_id,
        now,
    )
    return [dict(r) for r in rows]


async def due_standby(conn: Any, now: dt.datetime, limit: int) -> list[dict[str, Any]]:
    """Waiting entries past their deadline (or, without one, past their last day)."""
    rows = await conn.fetch(
        """SELECT * FROM hospital_standby WHERE status = 'waiting'
             AND (deadline <= $1 OR (deadline IS NULL AND last_day < ($1 AT TIME ZONE
                  'Asia/Shanghai')::date))
           ORDER BY id LIMIT $2""",
        now,
        limit,
    )
    return [dict(r) for r in rows]


async def standby_units(conn: Any, standby_ids: Sequence[int] | None = None) -> list[Any]:
    """(standby id, online resource, day) for every day and doctor an entry waits on:
    waiting entries, or the given ones whatever their state (to leave their units)."""
    return list(
        await conn.fetch(
            """SELECT sb.id, doc.online_resource_id AS resource_id, d::date AS day
               FROM hospital_standby sb
               JOIN hospital_doctors doc ON doc.department_id = sb.department_id
                    AND (sb.doctor_id IS NULL OR doc.id = sb.doctor_id)
               CROSS JOIN generate_series(sb.day, sb.last_day, interval '1 day') AS d
               WHERE CASE WHEN $1::bigint[] IS NULL THEN sb.status = 'waiting'
                          ELSE sb.id = ANY($1::bigint[]) END""",
            None if standby_ids is None else list(standby_ids),
        )
    )


async def account_by_person(conn: Any, person: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM accounts WHERE id_hmac = $1", person)
    return dict(row) if row is not None else None


async def lock_hospital(conn: Any, provider_id: str) -> None:
    """One publication per hospital at a time (overlap checks read, then write)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('hospital-publish:' || $1, 0))",
        provider_id,
    )


async def sessions_of_day(conn: Any, provider_id: str, day: dt.date) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT ses.*, doc.code AS doctor_code, doc.name AS doctor_name,
                  d.code AS department_code
           FROM hospital_sessions ses JOIN hospital_doctors doc ON doc.id = ses.doctor_id
           JOIN hospital_departments d ON d.id = ses.department_id
           WHERE ses.provider_id = $1 AND ses.day = $2 ORDER BY ses.starts_at, doc.code""",
        provider_id,
        day,
    )
    return [dict(r) for r in rows]


async def live_departments(
    conn: Any, account_id: str, day: dt.date, now: dt.datetime
) -> list[tuple[str, str]]:
    """(registration id, department id) of the account's registrations that count on
    ``day``: paid ones, and unpaid holds before their deadline."""
    rows = await conn.fetch(
        """SELECT id, department_id FROM hospital_registrations
           WHERE account_id = $1 AND day = $2
             AND (status IN ('confirmed', 'checked_in')
                  OR (status = 'held' AND hold_deadline > $3))""",
        account_id,
        day,
        now,
    )
    return [(r["id"], r["department_id"]) for r in rows]


async def day_gate_entries(conn: Any, first_day: dt.date, now: dt.datetime) -> list[dict[str, Any]]:
    """Every registration that counts in a patient's day gate from ``first_day`` on: paid
    ones (until the day ends), unpaid holds until their deadline; not those whose booking
    ended (cancelled or expired), whatever the registration row still says."""
    rows = await conn.fetch(
        """SELECT r.id, r.person_hmac, r.department_id, r.day, r.status, r.hold_deadline
           FROM hospital_registrations r LEFT JOIN bookings b ON b.id = r.id
           WHERE r.day >= $1
             AND (b.state IS NULL OR b.state IN ('held', 'confirmed'))
             AND (r.status IN ('confirmed', 'checked_in')
                  OR (r.status = 'held' AND (b.state = 'confirmed' OR r.hold_deadline > $2)))
           ORDER BY r.id""",
        first_day,
        now,
    )
    return [dict(r) for r in rows]


async def orphaned_standby_holds(conn: Any) -> list[dict[str, Any]]:
    """Standby places given in Redis whose Postgres side never committed: a live booking
    made for a waiting entry (its idempotency key names the entry: ``standby-<id>`` from a
    handover, ``hs<id>`` from a transfer) with no registration row. The filler crashed
    between the two; ``hospital_standby.settle_orphans`` finishes them."""
    rows = await conn.fetch(
        """SELECT s.id AS standby_id, b.id AS hold_id, b.slot_id, b.deadline
           FROM hospital_standby s
           JOIN bookings b ON b.account_id = s.account_id
                AND b.idempotency_key IN ('standby-' || s.id, 'hs' || s.id)
           WHERE s.status = 'waiting' AND b.state IN ('held', 'confirmed')
             AND NOT EXISTS (SELECT 1 FROM hospital_registrations r WHERE r.id = b.id)
           ORDER BY s.id"""
    )
    return [dict(r) for r in rows]


async def lock_waiting_standby(conn: Any, standby_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM hospital_standby WHERE id = $1 AND status = 'waiting' FOR UPDATE",
        standby_id,
    )
    return dict(row) if row is not None else None
