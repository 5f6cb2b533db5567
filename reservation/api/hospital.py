"""Hospital registration routes (issue 6): citizens browse and book, staff publish and run
the day, operators resolve appeals. Handlers are thin: rules live in the workflows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from reservation.api import hospital_schemas as hs
from reservation.api import listings
from reservation.api.citizen import PEOPLE
from reservation.api.headers import idempotency_key
from reservation.api.queue import queue_token, request_address
from reservation.api.routing import Call, Route, json_response, read_csv, refuse_nul_in_text
from reservation.auth import Role
from reservation.domain.clock import iso
from reservation.domain.hospital import HospitalPolicy, cancel_deadline
from reservation.errors import NotFound, UnsupportedMediaType, ValidationFailed
from reservation.store import catalog
from reservation.store import hospital as store
from reservation.workflows import (
    hospital_publish,
    hospital_register,
    hospital_staff,
    hospital_standby,
    hospital_standing,
)

CITIZEN = (Role.CITIZEN,)
STAFF = (Role.STAFF, Role.OPERATOR)
OPERATOR = (Role.OPERATOR,)
BIGINT_MAX = 2**63 - 1


def _fee(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


async def _person(call: Call) -> str:
    if call.principal is not None and call.principal.person is not None:
        return call.principal.person
    return await call.request.app[PEOPLE].person_of(call.services, call.citizen_id)


async def _hospital_of(call: Call) -> str:
    provider_id = call.path("provider_id")
    assert call.principal is not None
    call.principal.require_staff_of(provider_id)
    async with call.services.pool.acquire() as conn:
        provider = await catalog.get_provider(conn, provider_id)
    if provider is None or provider["kind"] != "hospital":
        raise NotFound("No such hospital.")
    return provider_id


def _actor(call: Call) -> str:
    assert call.principal is not None
    if call.principal.role is Role.OPERATOR:
        return "operator"
    return f"staff:{call.principal.provider_id}"


async def _registration_out(
    call: Call, reg: dict[str, Any], policies: dict[str, HospitalPolicy] | None = None
) -> dict[str, Any]:
    """``policies``: a per-request cache (lists read each hospital's policy once)."""
    state = await hospital_register.expire_stale(call.services, reg)
    paid = state in ("confirmed", "checked_in", "no_show")
    policies = {} if policies is None else policies
    policy = policies.get(reg["provider_id"])
    if policy is None:
        async with call.services.pool.acquire() as conn:
            policy = policies[reg["provider_id"]] = await store.get_policy(conn, reg["provider_id"])
    return {
        "id": reg["id"],
        "state": state,
        "hospital": reg["hospital_name"],
        "provider_id": reg["provider_id"],
        "department": reg["department_name"],
        "department_id": reg["department_id"],
        "doctor": reg["doctor_name"],
        "doctor_title": reg["doctor_title"],
        "fee_cny": _fee(reg["fee_fen"]),
        "slot_id": reg["slot_id"],
        "session_id": reg["session_id"],
        "day": reg["day"].isoformat(),
        "starts_at": iso(reg["starts_at"]),
        "ends_at": iso(reg["ends_at"]),
        "channel": reg["channel"],
        "origin": reg["origin"],
        "hold_deadline": iso(reg["hold_deadline"]) if state == "held" else None,
        "cancel_deadline": iso(cancel_deadline(reg["day"], policy)),
        "verification_code": reg["verification_code"] if paid else None,
        "offered_for": reg["offered_for"],
        "end_reason": reg["end_reason"],
    }


# Browsing (public) -------------------------------------------------------------------------


async def hospital_list(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        rows = await store.list_hospitals(conn)
        out = []
        for r in rows:
            policy = hospital_publish.policy_dict(await store.get_policy(conn, r["id"]))
            out.append(
                {"id": r["id"], "name": r["name"], "departments": r["departments"], **policy}
            )
    return json_response({"hospitals": out})


async def hospital_departments(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        provider = await catalog.get_provider(conn, call.path("provider_id"))
        if provider is None or provider["kind"] != "hospital":
            raise NotFound("No such hospital.")
        rows = await store.list_departments(conn, provider["id"])
    return json_response(
        {
            "hospital": {"id": provider["id"], "name": provider["name"]},
            "departments": [
                {"id": r["id"], "code": r["code"], "name": r["name"], "doctors": r["doctors"]}
                for r in rows
            ],
        }
    )


async def hospital_doctors(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        dep = await store.get_department(conn, call.path("department_id"))
        if dep is None:
            raise NotFound("No such department.")
        rows = await store.list_doctors(conn, dep["id"])
    return json_response(
        {
            "department": {"id": dep["id"], "name": dep["name"], "provider_id": dep["provider_id"]},
            "doctors": [
                {
                    "id": r["id"],
                    "code": r["code"],
                    "name": r["name"],
                    "title": r["title"],
                    "specialty": r["specialty"],
                    "fee_cny": _fee(r["fee_fen"]),
                }
                for r in rows
            ],
        }
    )


async def hospital_doctor_slots(call: Call) -> web.Response:
    q: hs.OptionalDayQuery = call.query
    doctor_id = call.path("doctor_id")

    async def read(conn: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        doctor = await store.get_doctor(conn, doctor_id)
        if doctor is None:
            raise NotFound("No such doctor.")
        return doctor, await store.doctor_slots(conn, doctor["id"], q.day)

    doctor, rows = await listings.catalogue(call, ("doctor", doctor_id, q.day), read)
    available = await call.services.slots.available([r["slot_id"] for r in rows])
    return json_response(
        {
            "doctor": {"id": doctor["id"], "name": doctor["name"], "title": doctor["title"]},
            "slots": [
                {
                    "id": r["slot_id"],
                    "session_id": r["session_id"],
                    "day": r["day"].isoformat(),
                    "period": r["period"],
                    "channel": r["channel"],
                    "starts_at": iso(r["starts_at"]),
                    "ends_at": iso(r["ends_at"]),
                    "capacity": r["capacity"],
                    "available": available.get(r["slot_id"]),
                    "release_at": iso(r["release_at"]),
                    "status": r["session_status"],
                }
                for r in rows
            ],
        }
    )


# Citizens ----------------------------------------------------------------------------------


async def hospital_book(call: Call) -> web.Response:
    body: hs.BookIn = call.body
    held = await hospital_register.hold_registration(
        call.services,
        account_id=call.citizen_id,
        person=await _person(call),
        slot_id=body.slot_id,
        channel="online",
        idempotency_key=idempotency_key(call),
        client_address=request_address(call.request, call.services),  # fairness (issue 5)
        queue_token=queue_token(call.request),
    )
    return json_response(
        {
            "id": held.registration_id,
            "slot_id": held.slot_id,
            "state": held.state,
            "deadline": iso(held.deadline),
            "replay": held.replay,
        },
        status=200 if held.replay else 201,
    )


async def hospital_confirm(call: Call) -> web.Response:
    reg = await hospital_register.confirm_registration(
        call.services, account_id=call.citizen_id, registration_id=call.path("registration_id")
    )
    return json_response(await _registration_out(call, reg))


async def hospital_cancel(call: Call) -> web.Response:
    reg = await hospital_register.cancel_registration(
        call.services, account_id=call.citizen_id, registration_id=call.path("registration_id")
    )
    return json_response(await _registration_out(call, reg))


async def hospital_my_registrations(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        rows = await store.list_for_account(conn, call.citizen_id)
    policies: dict[str, HospitalPolicy] = {}
    return json_response(
        {"registrations": [await _registration_out(call, r, policies) for r in rows]}
    )


async def hospital_join_standby(call: Call) -> web.Response:
    body: hs.StandbyIn = call.body
    joined = await hospital_standby.join_standby(
        call.services,
        account_id=call.citizen_id,
        person=await _person(call),
        department_id=body.department_id,
        day=body.day,
        last_day=body.last_day,
        doctor_id=body.doctor_id,
        deadline=body.deadline,
    )
    return json_response(
        {"id": joined.standby_id, "position": joined.position, "created": joined.created},
        status=201 if joined.created else 200,
    )


async def hospital_my_standby(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        rows = await store.standby_of_account(conn, call.citizen_id)
    return json_response(
        {
            "standby": [
                {
                    "id": r["id"],
                    "hospital": r["hospital_name"],
                    "department": r["department_name"],
                    "department_id": r["department_id"],
                    "day": r["day"].isoformat(),
                    "last_day": r["last_day"].isoformat(),
                    "doctor_id": r["doctor_id"],
                    "doctor": r["doctor_name"],
                    "deadline": iso(r["deadline"]),
                    "status": r["status"],
                    "position": r["position"],
                    "registration_id": r["registration_id"],
                    "joined_at": iso(r["created_at"]),
                }
                for r in rows
            ]
        }
    )


async def hospital_leave_standby(call: Call) -> web.Response:
    raw = call.path("standby_id")
    # A standby id is a Postgres bigint: a larger number overflowed in the driver (500).
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and 1 <= int(raw) <= BIGINT_MAX):
        raise NotFound("No such standby entry.")
    standby_id = int(raw)
    left = await hospital_standby.leave_standby(
        call.services, account_id=call.citizen_id, standby_id=standby_id
    )
    return json_response({"id": standby_id, "status": "cancelled", "replay": not left})


async def hospital_my_standing(call: Call) -> web.Response:
    return json_response(
        await hospital_standing.standing_of(call.services, person=await _person(call))
    )


async def hospital_appeal(call: Call) -> web.Response:
    body: hs.AppealIn = call.body
    out = await hospital_standing.file_appeal(
        call.services,
        account_id=call.citizen_id,
        registration_id=call.path("registration_id"),
        reason=body.reason,
    )
    return json_response(out, status=201)


# Staff -------------------------------------------------------------------------------------


async def hospital_put_policy(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    body: hs.PolicyIn = call.body
    policy = HospitalPolicy(
        release_time=body.release_time,
        days_ahead=body.days_ahead,
        cancel_deadline_days_before=body.cancel_deadline_days_before,
        cancel_deadline_time=body.cancel_deadline_time,
        counter_share_percent=body.counter_share_percent,
        offer_hold=dt.timedelta(minutes=body.offer_hold_minutes),
    )
    saved = await hospital_publish.put_policy(
        call.services, provider_id, policy, actor=_actor(call)
    )
    return json_response(hospital_publish.policy_dict(saved))


def _published(out: list[hospital_publish.PublishedSessionOut]) -> dict[str, Any]:
    return {
        "sessions": [
            {
                "row": o.row,
                "id": o.session_id,
                "doctor_code": o.doctor_code,
                "day": o.day.isoformat(),
                "period": o.period,
                "created": o.created,
                "slots": o.slots,
                "places": o.places,
                "counter_places": o.counter_places,
                "release_at": iso(o.release_at),
            }
            for o in out
        ]
    }


async def hospital_publish_json(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    body: hs.ScheduleRows = call.body
    out = await hospital_publish.publish_schedules(
        call.services, provider_id, list(enumerate(body.rows)), actor=_actor(call)
    )
    return json_response(_published(out), status=201)


async def hospital_publish_csv(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    raw = await read_csv(call.request, "schedule")
    charset = call.request.charset or "utf-8"
    try:
        text = raw.decode(charset)
    except LookupError as exc:  # the client named a charset Python has no text codec for
        raise UnsupportedMediaType(
            f"Unknown charset {charset!r}: send the schedule as text/csv in UTF-8."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"The CSV is not valid {charset} text.",
            errors=[{"row": 0, "field": "body", "message": str(exc)}],
        ) from exc
    refuse_nul_in_text(text)
    rows = hospital_publish.csv_rows(text)
    out = await hospital_publish.publish_schedules(
        call.services, provider_id, rows, actor=_actor(call)
    )
    return json_response(_published(out), status=201)


async def hospital_day_registrations(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    q: hs.DayQuery = call.query
    async with call.services.pool.acquire() as conn:
        rows = await store.list_for_provider_day(conn, provider_id, q.day)
    out = []
    policies: dict[str, HospitalPolicy] = {}
    for r in rows:
        item = await _registration_out(call, r, policies)
        item.update(patient=r["patient_name"], id_masked=r["id_masked"])
        out.append(item)
    return json_response({"day": q.day.isoformat(), "registrations": out})


async def hospital_day_sessions(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    q: hs.DayQuery = call.query
    async with call.services.pool.acquire() as conn:
        rows = await store.sessions_of_day(conn, provider_id, q.day)
    return json_response(
        {
            "sessions": [
                {
                    "id": r["id"],
                    "doctor_code": r["doctor_code"],
                    "doctor": r["doctor_name"],
                    "department_code": r["department_code"],
                    "period": r["period"],
                    "starts_at": iso(r["starts_at"]),
                    "ends_at": iso(r["ends_at"]),
                    "status": r["status"],
                    "capacity": r["capacity"],
                    "counter_capacity": r["counter_capacity"],
                }
                for r in rows
            ]
        }
    )


async def hospital_check_in(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    body: hs.CheckInIn = call.body
    return json_response(
        await hospital_staff.check_in(
            call.services, provider_id=provider_id, code=body.code, actor=_actor(call)
        )
    )


async def hospital_no_show(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    return json_response(
        await hospital_staff.mark_no_show(
            call.services,
            provider_id=provider_id,
            registration_id=call.path("registration_id"),
            actor=_actor(call),
        )
    )


async def hospital_cancel_session(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    body: hs.CancelSessionIn = call.body
    outcome = await hospital_staff.cancel_session(
        call.services,
        provider_id=provider_id,
        session_id=call.path("session_id"),
        reason=body.reason,
        actor=_actor(call),
    )
    return json_response({"session_id": outcome.session_id, "affected": outcome.affected})


async def hospital_walk_in(call: Call) -> web.Response:
    provider_id = await _hospital_of(call)
    body: hs.WalkInIn = call.body
    reg = await hospital_staff.book_walk_in(
        call.services,
        provider_id=provider_id,
        slot_id=body.slot_id,
        name=body.name,
        phone=body.phone,
        id_number=body.id_number,
        channel=body.channel,
        idempotency_key=idempotency_key(call),
        actor=_actor(call),
    )
    return json_response(await _registration_out(call, reg), status=201)


# Operators ---------------------------------------------------------------------------------


async def hospital_appeals(call: Call) -> web.Response:
    return json_response({"appeals": await hospital_standing.pending_appeals(call.services)})


async def hospital_resolve_appeal(call: Call) -> web.Response:
    body: hs.ResolveIn = call.body
    return json_response(
        await hospital_standing.resolve_appeal(
            call.services,
            registration_id=call.path("registration_id"),
            upheld=body.upheld,
            note=body.note,
            actor="operator",
        )
    )


_H = "/v1/hospital"
_P = "/v1/hospital/providers/{provider_id}"

ROUTES = [
    Route(
        "GET", f"{_H}/hospitals", hospital_list, "Hospitals and their release policy", "hospital"
    ),
    Route(
        "GET",
        f"{_H}/hospitals/{{provider_id}}/departments",
        hospital_departments,
        "A hospital's departments",
        "hospital",
    ),
    Route(
        "GET",
        f"{_H}/departments/{{department_id}}/doctors",
        hospital_doctors,
        "A department's doctors (title, specialty, fee)",
        "hospital",
    ),
    Route(
        "GET",
        f"{_H}/doctors/{{doctor_id}}/slots",
        hospital_doctor_slots,
        "A doctor's time slots with remaining places, per channel pool",
        "hospital",
        query=hs.OptionalDayQuery,
    ),
    Route(
        "POST",
        f"{_H}/registrations",
        hospital_book,
        "Register (hold a place) with a doctor; pay with /confirm before the deadline",
        "hospital",
        roles=CITIZEN,
        body=hs.BookIn,
        responses={
            201: "Held until the deadline",
            200: "Replay of the same Idempotency-Key",
            409: "sold_out, not_released, department_limit, daily_department_limit,"
            " person_limit, booking_suspended, channel_reserved, session_cancelled",
            429: "hold_cap: too many unpaid holds",
        },
    ),
    Route(
        "GET",
        f"{_H}/registrations",
        hospital_my_registrations,
        "My registrations",
        "hospital",
        roles=CITIZEN,
    ),
    Route(
        "POST",
        f"{_H}/registrations/{{registration_id}}/confirm",
        hospital_confirm,
        "Pay the fee: the registration is committed before the answer",
        "hospital",
        roles=CITIZEN,
        responses={200: "Confirmed, with the verification code", 409: "hold_expired"},
    ),
    Route(
        "POST",
        f"{_H}/registrations/{{registration_id}}/cancel",
        hospital_cancel,
        "Cancel (free until the deadline, default 15:00 the day before; refused after)",
        "hospital",
        roles=CITIZEN,
        responses={200: "Cancelled", 409: "cancel_deadline_passed"},
    ),
    Route(
        "POST",
        f"{_H}/standby",
        hospital_join_standby,
        "Join standby for a department or one doctor over 1-7 days, until a deadline",
        "hospital",
        roles=CITIZEN,
        body=hs.StandbyIn,
        responses={
            201: "Joined, with the position",
            200: "Already waiting",
            409: "booking_suspended / not_allowed_now",
            422: "bad_standby",
        },
    ),
    Route(
        "GET",
        f"{_H}/standby",
        hospital_my_standby,
        "My standby entries and positions",
        "hospital",
        roles=CITIZEN,
    ),
    Route(
        "POST",
        f"{_H}/standby/{{standby_id}}/cancel",
        hospital_leave_standby,
        "Leave standby",
        "hospital",
        roles=CITIZEN,
    ),
    Route(
        "GET",
        f"{_H}/standing",
        hospital_my_standing,
        "My no-show standing: counted no-shows, suspension, appeals",
        "hospital",
        roles=CITIZEN,
    ),
    Route(
        "POST",
        f"{_H}/no-shows/{{registration_id}}/appeal",
        hospital_appeal,
        "Appeal a no-show",
        "hospital",
        roles=CITIZEN,
        body=hs.AppealIn,
        responses={201: "Appeal pending", 409: "Already decided"},
    ),
    Route(
        "PUT",
        f"{_P}/policy",
        hospital_put_policy,
        "Set the hospital's release policy and counter share (audited)",
        "hospital-staff",
        roles=STAFF,
        body=hs.PolicyIn,
    ),
    Route(
        "POST",
        f"{_P}/schedules",
        hospital_publish_json,
        "Publish doctor schedules in bulk, JSON rows (all or nothing)",
        "hospital-staff",
        roles=STAFF,
        body=hs.ScheduleRows,
        responses={201: "Published", 422: "Every offending row listed; nothing published"},
    ),
    Route(
        "POST",
        f"{_P}/schedules.csv",
        hospital_publish_csv,
        "Publish doctor schedules in bulk, CSV (text/csv; all or nothing)",
        "hospital-staff",
        roles=STAFF,
        raw_body=("text/csv",),
        responses={
            201: "Published",
            415: "Not text/csv",
            422: "Every offending line listed (line 1 = header); nothing published",
        },
    ),
    Route(
        "GET",
        f"{_P}/sessions",
        hospital_day_sessions,
        "A day's sessions",
        "hospital-staff",
        roles=STAFF,
        query=hs.DayQuery,
    ),
    Route(
        "GET",
        f"{_P}/registrations",
        hospital_day_registrations,
        "A day's registrations",
        "hospital-staff",
        roles=STAFF,
        query=hs.DayQuery,
    ),
    Route(
        "POST",
        f"{_P}/check-ins",
        hospital_check_in,
        "Check a patient in by verification code (audited)",
        "hospital-staff",
        roles=STAFF,
        body=hs.CheckInIn,
        responses={200: "Checked in", 409: "not_allowed_now: the registration is not confirmed"},
    ),
    Route(
        "POST",
        f"{_P}/registrations/{{registration_id}}/no-show",
        hospital_no_show,
        "Mark a no-show (audited); the place goes to standby if its window still runs",
        "hospital-staff",
        roles=STAFF,
        responses={
            200: "Marked a no-show",
            409: "not_allowed_now: only a confirmed registration, once its time has begun",
        },
    ),
    Route(
        "POST",
        f"{_P}/sessions/{{session_id}}/cancel",
        hospital_cancel_session,
        "Cancel a session: patients notified and offered held alternatives (audited)",
        "hospital-staff",
        roles=STAFF,
        body=hs.CancelSessionIn,
    ),
    Route(
        "POST",
        f"{_P}/walk-ins",
        hospital_walk_in,
        "Book for a walk-in or caller: same rules, counter share first (audited)",
        "hospital-staff",
        roles=STAFF,
        body=hs.WalkInIn,
        responses={
            201: "Registered and paid at the counter",
            409: "sold_out, not_released, department_limit, daily_department_limit,"
            " person_limit, booking_suspended, channel_reserved, session_cancelled",
            429: "hold_cap: too many unpaid holds",
        },
    ),
    Route(
        "GET",
        f"{_H}/appeals",
        hospital_appeals,
        "Pending no-show appeals",
        "operator",
        roles=OPERATOR,
    ),
    Route(
        "POST",
        f"{_H}/appeals/{{registration_id}}/resolve",
        hospital_resolve_appeal,
        "Resolve a no-show appeal (audited)",
        "operator",
        roles=OPERATOR,
        body=hs.ResolveIn,
        responses={200: "Resolved", 409: "not_allowed_now: the appeal is not pending"},
    ),
]
