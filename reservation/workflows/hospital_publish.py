"""Hospital staff publish schedules in bulk (JSON rows or CSV): all or nothing.

A row is one doctor's session (day, morning/afternoon, start-end) cut into windows of
``slot_minutes``, each with ``capacity`` places of which ``counter_capacity`` (default:
the hospital's counter share) are kept for phone and on-site patients. Every row is
checked first (``domain.hospital.check_schedules``) and every offending row reported; then
departments, doctors, sessions and slots are written in ONE Postgres transaction, the
publication is audited (release, and the withheld counter share), and only then are the
slots put on sale in Redis (idempotent, so republishing the same batch completes a crash).
Slots open at the hospital's release time (default 07:00, 7 days ahead).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inventory.slot_engine import SlotSpec, new_slot_id
from reservation.domain.clock import iso, to_ms
from reservation.domain.hospital import (
    OPTIONAL_COLUMNS,
    SCHEDULE_COLUMNS,
    HospitalPolicy,
    ScheduleError,
    check_schedules,
    session_release_at,
)
from reservation.domain.slot_domains import HOSPITAL_RESOURCE_PREFIX
from reservation.errors import NotFound, ValidationFailed
from reservation.fairness import audit
from reservation.services import Services
from reservation.store import catalog
from reservation.store import hospital as store
from reservation.workflows.hospital_common import now_of
from reservation.workflows.publish_slots import RETAIN_AFTER_END

MAX_ROWS = 2000


@dataclass(frozen=True, slots=True)
class PublishedSessionOut:
    row: int
    session_id: str
    doctor_code: str
    day: dt.date
    period: str
    created: bool
    slots: int
    places: int
    counter_places: int
    release_at: dt.datetime


def csv_rows(text: str) -> list[tuple[int, Mapping[str, object]]]:
    """CSV text -> (line number, columns) rows; header problems raise ``ValidationFailed``.
    Line numbers count the header as line 1, so an error points at the file's own line.
    Lines may end in CR LF, LF or a lone CR (``newline=""``, as the csv module asks); what
    the csv module still cannot read (a field over its size limit) is a ``ValidationFailed``
    for that line, not a 500."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""), restkey="_extra")
    try:
        return _read_rows(reader)
    except csv.Error as exc:
        raise ValidationFailed(
            "Nothing was published: the CSV cannot be read.",
            errors=[{"row": reader.line_num, "field": "row", "message": f"unreadable CSV: {exc}"}],
        ) from None


def _read_rows(reader: csv.DictReader[str]) -> list[tuple[int, Mapping[str, object]]]:
    header = reader.fieldnames or []
    missing = [c for c in SCHEDULE_COLUMNS if c not in header and c not in OPTIONAL_COLUMNS]
    if not header or missing:
        raise ValidationFailed(
            "Nothing was published: the CSV header lacks required columns.",
            errors=[{"row": 1, "field": c, "message": "missing column"} for c in missing]
            or [{"row": 1, "field": "header", "message": "empty file"}],
        )
    rows: list[tuple[int, Mapping[str, object]]] = []
    errors: list[dict[str, object]] = []
    for raw in reader:
        line = reader.line_num
        if "_extra" in raw:
            errors.append({"row": line, "field": "row", "message": "more cells than columns"})
            continue
        if any(v is None for v in raw.values()):
            errors.append({"row": line, "field": "row", "message": "fewer cells than columns"})
            continue
        if not any((v or "").strip() for v in raw.values()):
            continue  # blank line
        rows.append((line, {k: v for k, v in raw.items() if (v or "").strip() != ""}))
        if len(rows) > MAX_ROWS:
            raise ValidationFailed(
                f"At most {MAX_ROWS} rows per publication.",
                errors=[{"row": line, "field": "row", "message": "too many rows"}],
            )
    if errors:
        raise ValidationFailed("Nothing was published: fix the listed rows.", errors=errors)
    return rows


async def publish_schedules(
    services: Services,
    provider_id: str,
    rows: Sequence[tuple[int, Mapping[str, object]]],
    *,
    actor: str,
) -> list[PublishedSessionOut]:
    now = now_of(services)
    specs: list[SlotSpec] = []
    out: list[PublishedSessionOut] = []
    async with services.pool.acquire() as conn, conn.transaction():
        provider = await catalog.get_provider(conn, provider_id)
        if provider is None or provider["kind"] != "hospital":
            raise NotFound("No such hospital.")
        await store.lock_hospital(conn, provider_id)
        policy = await store.get_policy(conn, provider_id)
        known = await store.known_doctors(conn, provider_id)
        codes = sorted({str(raw.get("doctor_code", "")).strip() for _, raw in rows})
        days = sorted({d for _, raw in rows if (d := _maybe_day(raw.get("day"))) is not None})
        published = await store.published_sessions(conn, provider_id, codes, days)
        batch, errors = check_schedules(
            rows,
            policy=policy,
            now=now,
            published=published,
            known_doctors={code: draft for code, (_, draft) in known.items()},
        )
        if errors:
            raise ValidationFailed(
                "Nothing was published: fix the listed rows.",
                errors=[e.to_dict() for e in errors],
            )
        departments = {
            d.code: await store.upsert_department(
                conn, "hd" + secrets.token_hex(8), provider_id, d.code, d.name
            )
            for d in batch.departments
        }
        doctors: dict[str, dict[str, str]] = {}
        for doc in batch.doctors:
            resources = await catalog.upsert_resources(
                conn,
                provider_id,
                [
                    (
                        # "rh": a hospital resource, recognisable from the slot's live meta
                        # (so the generic hold path can refuse it without a lookup).
                        HOSPITAL_RESOURCE_PREFIX + secrets.token_hex(8),
                        doc.code if channel == "online" else f"{doc.code}~counter",
                        f"{doc.name} ({channel})",
                        "doctor",
                        {"doctor_code": doc.code, "channel": channel},
                    )
                    for channel in ("online", "counter")
                ],
            )
            online, counter = resources[doc.code], resources[f"{doc.code}~counter"]
            doctor_id = await store.upsert_doctor(
                conn,
                doctor_id=known[doc.code][0] if doc.code in known else "hdr" + secrets.token_hex(8),
                provider_id=provider_id,
                department_id=departments[doc.department_code],
                draft=doc,
                online_resource_id=online,
                counter_resource_id=counter,
            )
            doctors[doc.code] = {
                "id": doctor_id,
                "department": departments[doc.department_code],
                "online": online,
                "counter": counter,
            }
        slot_rows: list[tuple[Any, ...]] = []
        link_rows: list[tuple[str, str, str, Any]] = []
        for s in batch.sessions:
            doc_ids = doctors[s.doctor_code]
            release = session_release_at(s, policy)
            session_id = batch.republished.get(s.row)
            created = session_id is None
            if session_id is None:
                session_id = "hs" + secrets.token_hex(8)
                await store.insert_session(
                    conn,
                    (
                        session_id,
                        provider_id,
                        doc_ids["id"],
                        doc_ids["department"],
                        s.day,
                        s.period,
                        s.starts_at,
                        s.ends_at,
                        s.slot_minutes,
                        s.capacity,
                        s.counter_capacity,
                        release,
                    ),
                )
                for start, end in s.windows():
                    for channel, places in (
                        ("online", s.capacity - s.counter_capacity),
                        ("counter", s.counter_capacity),
                    ):
                        if places <= 0:
                            continue
                        slot_id = new_slot_id(services.keys, doc_ids[channel])
                        slot_rows.append(
                            (
                                slot_id,
                                provider_id,
                                doc_ids[channel],
                                s.day,
                                start,
                                end,
                                places,
                                release,
                            )
                        )
                        link_rows.append((slot_id, session_id, channel, start))
                        specs.append(_spec(slot_id, doc_ids[channel], s.day, places, release, end))
            else:
                # Identical to a published session: put its slots on sale again (a no-op
                # unless an earlier publication crashed before Redis).
                for slot in await store.session_slots(conn, session_id):
                    specs.append(
                        _spec(
                            slot["slot_id"],
                            doc_ids[slot["channel"]],
                            s.day,
                            slot["capacity"],
                            release,
                            slot["ends_at"],
                        )
                    )
            windows = len(s.windows())
            out.append(
                PublishedSessionOut(
                    row=s.row,
                    session_id=session_id,
                    doctor_code=s.doctor_code,
                    day=s.day,
                    period=s.period,
                    created=created,
                    slots=windows,
                    places=windows * s.capacity,
                    counter_places=windows * s.counter_capacity,
                    release_at=release,
                )
            )
        await catalog.insert_slots(conn, slot_rows)
        await store.insert_hospital_slots(conn, link_rows)
        new = [o for o in out if o.created]
        if new:
            subject = f"hospital:{provider_id}"
            await audit.append(
                conn,
                audit.Kind.RELEASE,
                subject,
                actor,
                {
                    "sessions": [o.session_id for o in new],
                    "places": sum(o.places for o in new),
                    "first_release": iso(min(o.release_at for o in new)),
                },
                at=now,
            )
            await audit.append(
                conn,
                audit.Kind.WITHHOLDING,
                subject,
                actor,
                {
                    "reason": "phone and on-site channels",
                    "counter_places": sum(o.counter_places for o in new),
                    "of_places": sum(o.places for o in new),
                },
                at=now,
            )
    await services.slots.publish(specs)
    return out


def _spec(
    slot_id: str, resource_id: str, day: dt.date, capacity: int, release: Any, end: Any
) -> SlotSpec:
    return SlotSpec(
        slot_id=slot_id,
        resource_id=resource_id,
        day=day.isoformat(),
        capacity=capacity,
        release_ms=to_ms(release),
        ends_ms=to_ms(end),
        retain_until_ms=to_ms(end + RETAIN_AFTER_END),
    )


def _maybe_day(value: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        return None


async def put_policy(
    services: Services, provider_id: str, policy: HospitalPolicy, *, actor: str
) -> HospitalPolicy:
    """Change the hospital's release policy and counter share (audited as a quota change;
    applies to sessions published afterwards)."""
    now = now_of(services)
    async with services.pool.acquire() as conn, conn.transaction():
        provider = await catalog.get_provider(conn, provider_id)
        if provider is None or provider["kind"] != "hospital":
            raise NotFound("No such hospital.")
        before = await store.get_policy(conn, provider_id)
        await store.put_policy(conn, provider_id, policy)
        await audit.append(
            conn,
            audit.Kind.QUOTA_CHANGE,
            f"hospital:{provider_id}",
            actor,
            {"before": policy_dict(before), "after": policy_dict(policy)},
            at=now,
        )
    return policy


def _hhmm(value: dt.time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def policy_dict(policy: HospitalPolicy) -> dict[str, Any]:
    return {
        "release_time": _hhmm(policy.release_time),
        "days_ahead": policy.days_ahead,
        "cancel_deadline_days_before": policy.cancel_deadline_days_before,
        "cancel_deadline_time": _hhmm(policy.cancel_deadline_time),
        "counter_share_percent": policy.counter_share_percent,
        "offer_hold_minutes": int(policy.offer_hold.total_seconds() // 60),
        "max_departments_per_day": policy.max_departments_per_day,
        "no_show_limit": policy.no_show_limit,
        "no_show_window_days": policy.no_show_window.days,
        "suspension_days": policy.suspension.days,
    }


__all__ = ["ScheduleError", "csv_rows", "publish_schedules", "put_policy"]
