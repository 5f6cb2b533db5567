"""Vaccination in Postgres: products, campaigns, sites, appointments, doses, consent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson

from reservation.domain.vaccine import Campaign, DoseInterval, Product

# pg_advisory_xact_lock namespace of "one person's vaccine bookings" ("vaccpers").
_PERSON_LOCK = 0x76616363


def _product(row: Any) -> Product:
    intervals = row["intervals"]
    if isinstance(intervals, str):
        intervals = orjson.loads(intervals)
    return Product(
        code=row["code"],
        name=row["name"],
        doses=row["doses"],
        intervals=tuple(DoseInterval(int(a), int(b)) for a, b in intervals),
        book_series=row["book_series"],
    )


async def products(conn: Any) -> dict[str, Product]:
    rows = await conn.fetch("SELECT * FROM vaccine_products ORDER BY code")
    return {r["code"]: _product(r) for r in rows}


async def campaigns(conn: Any) -> list[tuple[str, str, Campaign]]:
    """(id, name, campaign) of every campaign."""
    rows = await conn.fetch(
        """SELECT c.id, c.name AS campaign_name, c.min_age, c.max_age, c.priority_groups,
                  p.* FROM vaccine_campaigns c
           JOIN vaccine_products p ON p.code = c.product_code ORDER BY c.id"""
    )
    return [
        (
            r["id"],
            r["campaign_name"],
            Campaign(_product(r), r["min_age"], r["max_age"], frozenset(r["priority_groups"])),
        )
        for r in rows
    ]


async def campaign(conn: Any, campaign_id: str) -> Campaign | None:
    for cid, _, found in await campaigns(conn):
        if cid == campaign_id:
            return found
    return None


# Sites ---------------------------------------------------------------------------------


async def insert_sites(conn: Any, rows: Sequence[tuple[str, ...]]) -> None:
    """rows: (provider_id, province, city_code, city, city_en, district, address)."""
    await conn.executemany(
        """INSERT INTO vaccine_sites (provider_id, province, city_code, city, city_en,
                                      district, address)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (provider_id) DO NOTHING""",
        rows,
    )


async def find_sites(
    conn: Any,
    *,
    city: str | None,
    district: str | None,
    product: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Sites by place; with ``product``, only sites that have published it."""
    rows = await conn.fetch(
        """SELECT v.*, p.name,
                  ARRAY(SELECT r.code FROM resources r
                        JOIN vaccine_products vp ON vp.code = r.code
                        WHERE r.provider_id = v.provider_id AND r.kind = 'vaccination'
                        ORDER BY r.code) AS products
           FROM vaccine_sites v JOIN providers p ON p.id = v.provider_id
           WHERE ($1::text IS NULL OR v.city IN ($1, $1 || '市') OR v.city_code = $1
                  OR lower(v.city_en) = lower($1))
             AND ($2::text IS NULL OR v.district = $2)
             AND ($3::text IS NULL OR EXISTS (
                   SELECT 1 FROM resources r WHERE r.provider_id = v.provider_id
                   AND r.kind = 'vaccination' AND r.code = $3))
           ORDER BY v.city_code, v.district, v.provider_id LIMIT $4 OFFSET $5""",
        city,
        district,
        product,
        limit,
        offset,
    )
    return [dict(r) for r in rows]


async def get_site(conn: Any, provider_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT v.*, p.name FROM vaccine_sites v JOIN providers p ON p.id = v.provider_id
           WHERE v.provider_id = $1""",
        provider_id,
    )
    return dict(row) if row is not None else None


async def site_slots(
    conn: Any,
    provider_ids: Sequence[str],
    *,
    product: str | None,
    day_from: dt.date,
    day_to: dt.date,
    limit: int = 2000,
) -> list[dict[str, Any]]:
    """Open vaccination slots of these sites (resource code = product code)."""
    rows = await conn.fetch(
        """SELECT s.*, r.code AS product_code FROM slots s
           JOIN resources r ON r.id = s.resource_id
           JOIN vaccine_products vp ON vp.code = r.code
           WHERE s.provider_id = ANY($1::text[]) AND r.kind = 'vaccination'
             AND ($2::text IS NULL OR r.code = $2)
             AND s.day BETWEEN $3 AND $4 AND s.status = 'open'
           ORDER BY s.provider_id, s.starts_at, r.code LIMIT $5""",
        list(provider_ids),
        product,
        day_from,
        day_to,
        limit,
    )
    return [dict(r) for r in rows]


async def slots_info(conn: Any, slot_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """slot id -> slot with its resource's product code and its site."""
    rows = await conn.fetch(
        """SELECT s.*, r.code AS product_code, r.kind AS resource_kind, p.name AS site_name
           FROM slots s JOIN resources r ON r.id = s.resource_id
           JOIN providers p ON p.id = s.provider_id
           WHERE s.id = ANY($1::text[])""",
        list(slot_ids),
    )
    return {r["id"]: dict(r) for r in rows}


# People ----------------------------------------------------------------------------------


async def lock_person(conn: Any, person_hmac: str) -> None:
    """Serialises one person's vaccine bookings (whichever account books for them) until
    the transaction ends: the dose-order check and the insert see the same history."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _PERSON_LOCK, person_hmac)


async def person_groups(conn: Any, person_hmac: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT group_code FROM vaccine_person_groups WHERE person_hmac = $1", person_hmac
    )
    return {r["group_code"] for r in rows}


async def grant_groups(conn: Any, person_hmac: str, groups: Sequence[str], at: dt.datetime) -> None:
    await conn.executemany(
        """INSERT INTO vaccine_person_groups (person_hmac, group_code, granted_at)
           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
        [(person_hmac, g, at) for g in groups],
    )


async def set_consent(
    conn: Any, passenger_id: str, account_id: str, statement: str, at: dt.datetime
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO vaccine_consents (passenger_id, account_id, statement, consented_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (passenger_id) DO UPDATE
           SET statement = EXCLUDED.statement, consented_at = EXCLUDED.consented_at,
               revoked_at = NULL
           RETURNING *""",
        passenger_id,
        account_id,
        statement,
        at,
    )
    return dict(row)


async def revoke_consent(conn: Any, passenger_id: str, at: dt.datetime) -> bool:
    status: str = await conn.execute(
        """UPDATE vaccine_consents SET revoked_at = $2
           WHERE passenger_id = $1 AND revoked_at IS NULL""",
        passenger_id,
        at,
    )
    return status.endswith(" 1")


async def consent_of(conn: Any, passenger_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM vaccine_consents WHERE passenger_id = $1 AND revoked_at IS NULL",
        passenger_id,
    )
    return dict(row) if row is not None else None


# Appointments and doses ------------------------------------------------------------------

APPOINTMENT_SELECT = """
SELECT a.*, b.state AS booking_state, p.name AS site_name, s.ends_at
FROM vaccine_appointments a
LEFT JOIN bookings b ON b.id = a.id
JOIN providers p ON p.id = a.provider_id
JOIN slots s ON s.id = a.slot_id
"""


async def appointments_of_person(
    conn: Any, person_hmac: str, product_code: str | None = None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        APPOINTMENT_SELECT
        + """WHERE a.person_hmac = $1 AND ($2::text IS NULL OR a.product_code = $2)
             ORDER BY a.starts_at, a.dose""",
        person_hmac,
        product_code,
    )
    return [dict(r) for r in rows]


async def appointments_of_account(conn: Any, account_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        APPOINTMENT_SELECT + "WHERE a.account_id = $1 ORDER BY a.starts_at DESC, a.dose LIMIT 200",
        account_id,
    )
    return [dict(r) for r in rows]


async def appointments_of_series(conn: Any, series_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        APPOINTMENT_SELECT + "WHERE a.series_id = $1 ORDER BY a.dose, a.created_at", series_id
    )
    return [dict(r) for r in rows]


async def appointment(conn: Any, appointment_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(APPOINTMENT_SELECT + "WHERE a.id = $1", appointment_id)
    return dict(row) if row is not None else None


async def appointments_of_site_day(
    conn: Any, provider_id: str, day: dt.date
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        APPOINTMENT_SELECT
        + "WHERE a.provider_id = $1 AND a.day = $2 ORDER BY a.starts_at, a.created_at",
        provider_id,
        day,
    )
    return [dict(r) for r in rows]


async def by_code(conn: Any, provider_id: str, code: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        APPOINTMENT_SELECT + "WHERE a.provider_id = $1 AND a.verification_code = $2",
        provider_id,
        code,
    )
    return dict(row) if row is not None else None


async def insert_appointments(conn: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Idempotent: a retried booking finds its rows already there."""
    await conn.executemany(
        """INSERT INTO vaccine_appointments (id, series_id, account_id, person_hmac,
               passenger_id, person_name, person_masked, product_code, campaign_id, dose,
               slot_id, provider_id, day, starts_at, state, deadline, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                   $17, $17)
           ON CONFLICT (id) DO NOTHING""",
        [
            (
                r["id"],
                r["series_id"],
                r["account_id"],
                r["person_hmac"],
                r["passenger_id"],
                r["person_name"],
                r["person_masked"],
                r["product_code"],
                r["campaign_id"],
                r["dose"],
                r["slot_id"],
                r["provider_id"],
                r["day"],
                r["starts_at"],
                r["state"],
                r["deadline"],
                r["created_at"],
            )
            for r in rows
        ],
    )


async def mark_confirmed(conn: Any, codes: dict[str, str], at: dt.datetime) -> None:
    """appointment id -> verification code; only held rows move (a replay is a no-op)."""
    await conn.executemany(
        """UPDATE vaccine_appointments SET state = 'confirmed', verification_code = $2,
                  updated_at = $3
           WHERE id = $1 AND state = 'held'""",
        [(aid, code, at) for aid, code in codes.items()],
    )


async def mark_ended(
    conn: Any,
    appointment_ids: Sequence[str],
    state: str,
    reason: str,
    at: dt.datetime,
    moved_to: dict[str, str] | None = None,
) -> list[str]:
    """Cancel / move live appointments; returns the ids that changed now."""
    moved_to = moved_to or {}
    changed: list[str] = []
    for aid in appointment_ids:
        row = await conn.fetchval(
            """UPDATE vaccine_appointments SET state = $2, end_reason = $3, updated_at = $4,
                      moved_to = $5
               WHERE id = $1 AND state IN ('held', 'confirmed') RETURNING id""",
            aid,
            state,
            reason,
            at,
            moved_to.get(aid),
        )
        if row is not None:
            changed.append(row)
    return changed


async def check_in(conn: Any, appointment_id: str, at: dt.datetime) -> None:
    await conn.execute(
        """UPDATE vaccine_appointments SET checked_in_at = COALESCE(checked_in_at, $2),
                  updated_at = $2 WHERE id = $1""",
        appointment_id,
        at,
    )


async def doses_of_person(
    conn: Any, person_hmac: str, product_code: str | None = None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT d.*, p.name AS site_name FROM vaccine_doses d
           JOIN providers p ON p.id = d.provider_id
           WHERE d.person_hmac = $1 AND ($2::text IS NULL OR d.product_code = $2)
           ORDER BY d.product_code, d.dose""",
        person_hmac,
        product_code,
    )
    return [dict(r) for r in rows]


async def record_dose(
    conn: Any,
    *,
    person_hmac: str,
    product_code: str,
    dose: int,
    given_on: dt.date,
    given_at: dt.datetime,
    provider_id: str,
    appointment_id: str,
    lot: str,
    recorded_by: str,
) -> bool:
    """False if that dose of that person was already recorded."""
    row = await conn.fetchval(
        """INSERT INTO vaccine_doses (person_hmac, product_code, dose, given_on, given_at,
                                      provider_id, appointment_id, lot, recorded_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT DO NOTHING RETURNING dose""",
        person_hmac,
        product_code,
        dose,
        given_on,
        given_at,
        provider_id,
        appointment_id,
        lot,
        recorded_by,
    )
    if row is None:
        return False
    await conn.execute(
        """UPDATE vaccine_appointments SET state = 'given', updated_at = $2
           WHERE id = $1 AND state = 'confirmed'""",
        appointment_id,
        given_at,
    )
    return True


async def resource_slots(
    conn: Any, resource_id: str, day_from: dt.date, day_to: dt.date
) -> list[dict[str, Any]]:
    """Open slots of one resource (a product at a site) between two days, earliest first."""
    rows = await conn.fetch(
        """SELECT s.*, r.code AS product_code, p.name AS site_name FROM slots s
           JOIN resources r ON r.id = s.resource_id JOIN providers p ON p.id = s.provider_id
           WHERE s.resource_id = $1 AND s.day BETWEEN $2 AND $3 AND s.status = 'open'
           ORDER BY s.starts_at LIMIT 500""",
        resource_id,
        day_from,
        day_to,
    )
    return [dict(r) for r in rows]


# --- integrity (issue 6) ------------------------------------------------------------------
async def series_of_holds(conn: Any, hold_ids: Sequence[str]) -> dict[str, str]:
    """hold id -> series id, for the holds that are vaccine appointments (an appointment's
    id is its hold id): the rebuild restores each hold's series marker from it."""
    rows = await conn.fetch(
        "SELECT id, series_id FROM vaccine_appointments WHERE id = ANY($1::text[])",
        list(hold_ids),
    )
    return {r["id"]: r["series_id"] for r in rows}


async def vaccine_hold_ids(conn: Any, hold_ids: Sequence[str]) -> set[str]:
    """Which of these holds are vaccine appointments (their notes are the vaccine's)."""
    rows = await conn.fetch(
        "SELECT id FROM vaccine_appointments WHERE id = ANY($1::text[])", list(hold_ids)
    )
    return {r["id"] for r in rows}


async def orphaned_waitlist_series(conn: Any) -> list[dict[str, Any]]:
    """Live bookings of waiting vaccine waitlist orders (their idempotency key is
    ``vwait:<order id>``) with no appointment row: a series the filler held in Redis but
    never recorded (``vaccine_waitlist.settle_orphans``)."""
    rows = await conn.fetch(
        """SELECT w.id AS order_id, b.id AS hold_id, b.slot_id, b.deadline
           FROM vaccine_waitlist w
           JOIN bookings b ON b.account_id = w.account_id
                AND b.idempotency_key = 'vwait:' || w.id
           WHERE w.status = 'waiting' AND b.state IN ('held', 'confirmed')
             AND NOT EXISTS (SELECT 1 FROM vaccine_appointments a WHERE a.id = b.id)
           ORDER BY w.id, b.id"""
    )
    return [dict(r) for r in rows]
