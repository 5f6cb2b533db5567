"""Vaccination routes: find sites and slots, eligibility, book a series (self or a
consenting person on the account's list), confirm, cancel, move a dose, records; staff
publish sessions (JSON or CSV), see a day's appointments, check in, record doses given."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from typing import Any

import pydantic
from aiohttp import web

from reservation.api import listings
from reservation.api import vaccine_schemas as vs
from reservation.api.headers import idempotency_key
from reservation.api.routing import Call, Route, json_response, read_csv, refuse_nul_in_text
from reservation.api.serialize import iso
from reservation.auth import Principal, Role
from reservation.domain.clock import CHINA, from_ms
from reservation.domain.identity import InvalidIdNumber, parse_resident_id
from reservation.errors import (
    NotFound,
    ValidationFailed,
)
from reservation.store import catalog
from reservation.store import vaccine as store
from reservation.workflows import (
    vaccine_booking,
    vaccine_people,
    vaccine_record,
    vaccine_waitlist,
)
from reservation.workflows.vaccine_publish import SessionDraft, publish_sessions

CITIZEN = (Role.CITIZEN,)
STAFF = (Role.STAFF, Role.OPERATOR)
OPERATOR = (Role.OPERATOR,)
SERIES_ID = re.compile(r"vs-[0-9a-f]{20}")


def _now(call: Call) -> dt.datetime:
    return from_ms(call.services.clock())


def _series_id(call: Call) -> str:
    series_id = call.path("series_id")
    if not SERIES_ID.fullmatch(series_id):
        raise NotFound("No such vaccine booking.")
    return series_id


def _actor(principal: Principal | None) -> str:
    if principal is None or principal.role is Role.OPERATOR:
        return "operator"
    return f"staff:{principal.provider_id}"


def _booking_view(call: Call, series_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    now = _now(call)
    return {
        "id": series_id,
        "state": vaccine_booking.summary(rows, now),
        "appointments": [vaccine_record.appointment_view(r, now) for r in rows],
    }


# --- citizens: catalogue, sites, slots ----------------------------------------------------


async def catalogue(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        products = await store.products(conn)
        campaigns = await store.campaigns(conn)
    return json_response(
        {
            "products": [
                {
                    "code": p.code,
                    "name": p.name,
                    "doses": p.doses,
                    "intervals_days": [[i.min_days, i.max_days] for i in p.intervals],
                    "book_series": p.book_series,
                }
                for p in products.values()
            ],
            "campaigns": [
                {
                    "id": cid,
                    "name": name,
                    "product": c.product.code,
                    "min_age": c.min_age,
                    "max_age": c.max_age,
                    "priority_groups": sorted(c.priority_groups),
                }
                for cid, name, c in campaigns
            ],
        }
    )


async def find_sites(call: Call) -> web.Response:
    q: vs.SiteQuery = call.query
    async with call.services.pool.acquire() as conn:
        sites = await store.find_sites(
            conn,
            city=q.city,
            district=q.district,
            product=q.product,
            limit=q.limit,
            offset=q.offset,
        )
        slots: list[dict[str, Any]] = []
        if q.product is not None and q.day is not None and sites:
            slots = await store.site_slots(
                conn,
                [s["provider_id"] for s in sites],
                product=q.product,
                day_from=q.day,
                day_to=q.day,
            )
    places: dict[str, int] = {}
    if slots:
        available = await call.services.slots.available([s["id"] for s in slots])
        for s in slots:
            places[s["provider_id"]] = places.get(s["provider_id"], 0) + (
                available.get(s["id"]) or 0
            )
    with_day = q.product is not None and q.day is not None
    return json_response(
        {
            "sites": [
                {
                    "id": s["provider_id"],
                    "name": s["name"],
                    "city": s["city"],
                    "city_en": s["city_en"],
                    "city_code": s["city_code"],
                    "district": s["district"],
                    "address": s["address"],
                    "products": list(s["products"]),
                    "available": places.get(s["provider_id"], 0) if with_day else None,
                }
                for s in sites
            ]
        }
    )


async def site_slots(call: Call) -> web.Response:
    q: vs.SiteSlotsQuery = call.query
    site_id = call.path("site_id")
    today = _now(call).astimezone(CHINA).date()
    start = q.day or today
    end = q.day or today + dt.timedelta(days=q.days - 1)

    async def read(conn: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        site = await store.get_site(conn, site_id)
        if site is None:
            raise NotFound("No such vaccination site.")
        rows = await store.site_slots(
            conn, [site_id], product=q.product, day_from=start, day_to=end
        )
        return site, rows

    site, rows = await listings.catalogue(
        call, ("vaccine-site", site_id, q.product, start, end), read
    )
    available = await call.services.slots.available([r["id"] for r in rows])
    return json_response(
        {
            "site": {"id": site_id, "name": site["name"], "district": site["district"]},
            "slots": [
                {
                    "id": r["id"],
                    "product": r["product_code"],
                    "day": r["day"].isoformat(),
                    "starts_at": iso(r["starts_at"]),
                    "ends_at": iso(r["ends_at"]),
                    "capacity": r["capacity"],
                    "release_at": iso(r["release_at"]),
                    "available": available.get(r["id"]),
                }
                for r in rows
            ],
        }
    )


# --- citizens: eligibility, booking, records ----------------------------------------------


async def check_eligibility(call: Call) -> web.Response:
    q: vs.EligibilityQuery = call.query
    async with call.services.pool.acquire() as conn:
        person = await vaccine_people.resolve_person(conn, call.citizen_id, q.passenger_id)
        result = await vaccine_record.eligibility(call.services, conn, person, q.campaign_id, q.day)
    return json_response(result)


async def book(call: Call) -> web.Response:
    body: vs.BookVaccine = call.body
    done = await vaccine_booking.book(
        call.services,
        account_id=call.citizen_id,
        campaign_id=body.campaign_id,
        slot_ids=body.slot_ids,
        passenger_id=body.passenger_id,
        first_dose=body.first_dose,
        idempotency_key=idempotency_key(call),
    )
    view = _booking_view(call, done.series_id, done.appointments)
    view["deadline"] = iso(from_ms(done.deadline_ms)) if done.state == "held" else None
    view["replay"] = done.replay
    return json_response(view, status=200 if done.replay else 201)


async def confirm(call: Call) -> web.Response:
    series_id = _series_id(call)
    rows = await vaccine_booking.confirm(
        call.services, account_id=call.citizen_id, series_id=series_id
    )
    return json_response(_booking_view(call, series_id, rows))


async def cancel(call: Call) -> web.Response:
    series_id = _series_id(call)
    rows = await vaccine_booking.cancel(
        call.services, account_id=call.citizen_id, series_id=series_id
    )
    return json_response(_booking_view(call, series_id, rows))


async def get_booking(call: Call) -> web.Response:
    series_id = _series_id(call)
    async with call.services.pool.acquire() as conn:
        rows = await store.appointments_of_series(conn, series_id)
    if not rows or rows[0]["account_id"] != call.citizen_id:
        raise NotFound("No such vaccine booking.")
    return json_response(_booking_view(call, series_id, rows))


async def reschedule(call: Call) -> web.Response:
    body: vs.Reschedule = call.body
    moved = await vaccine_booking.reschedule(
        call.services,
        account_id=call.citizen_id,
        appointment_id=call.path("appointment_id"),
        slot_id=body.slot_id,
        idempotency_key=idempotency_key(call),
    )
    view = _booking_view(call, moved.series_id, moved.appointments)
    view["moved"] = moved.moved
    view["released"] = moved.released
    return json_response(view)


async def my_appointments(call: Call) -> web.Response:
    now = _now(call)
    async with call.services.pool.acquire() as conn:
        rows = await store.appointments_of_account(conn, call.citizen_id)
    return json_response({"appointments": [vaccine_record.appointment_view(r, now) for r in rows]})


async def my_record(call: Call) -> web.Response:
    q: vs.PersonQuery = call.query
    async with call.services.pool.acquire() as conn:
        person = await vaccine_people.resolve_person(conn, call.citizen_id, q.passenger_id)
        record = await vaccine_record.record_of(call.services, conn, person)
    return json_response(record)


async def give_consent(call: Call) -> web.Response:
    body: vs.Consent = call.body
    async with call.services.pool.acquire() as conn:
        row = await vaccine_people.record_consent(
            conn,
            account_id=call.citizen_id,
            passenger_id=call.path("passenger_id"),
            statement=body.statement,
            at=_now(call),
        )
    return json_response(
        {
            "passenger_id": row["passenger_id"],
            "consented": True,
            "statement": row["statement"],
            "consented_at": iso(row["consented_at"]),
        },
        status=201,
    )


async def withdraw_consent(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        await vaccine_people.revoke_consent(
            conn, account_id=call.citizen_id, passenger_id=call.path("passenger_id"), at=_now(call)
        )
    return web.Response(status=204)


# --- staff and operators ------------------------------------------------------------------


async def _site_of(call: Call) -> str:
    provider_id = call.path("provider_id")
    assert call.principal is not None
    call.principal.require_staff_of(provider_id)
    async with call.services.pool.acquire() as conn:
        provider = await catalog.get_provider(conn, provider_id)
    if provider is None or provider["kind"] != "vaccination":
        raise NotFound("No such vaccination site.")
    return provider_id


def _drafts(rows: list[Any]) -> tuple[list[SessionDraft], list[dict[str, Any]]]:
    """Each row validated on its own, so every bad row is reported (with its number)."""
    drafts: list[SessionDraft] = []
    errors: list[dict[str, Any]] = []
    for i, raw in enumerate(rows):
        try:
            row = vs.SessionRow.model_validate(raw)
        except pydantic.ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                field = ".".join(str(p) for p in err["loc"]) or "row"
                errors.append({"row": i, "field": field, "message": err["msg"]})
            continue
        starts = dt.datetime.combine(row.day, row.start, tzinfo=CHINA)
        ends = dt.datetime.combine(row.day, row.end, tzinfo=CHINA)
        drafts.append(SessionDraft(i, row.product, starts, ends, row.capacity, row.release_at))
    return drafts, errors


async def _publish(call: Call, rows: list[Any]) -> web.Response:
    provider_id = await _site_of(call)
    drafts, errors = _drafts(rows)
    published = await publish_sessions(
        call.services, provider_id, drafts, parse_errors=errors, actor=_actor(call.principal)
    )
    return json_response(
        {
            "slots": [
                {
                    "id": p.slot_id,
                    "product": p.resource_code,
                    "starts_at": iso(p.starts_at),
                    "ends_at": iso(p.ends_at),
                    "capacity": p.capacity,
                    "release_at": iso(p.release_at),
                    "created": p.created,
                }
                for p in published
            ]
        },
        status=201,
    )


async def publish_json(call: Call) -> web.Response:
    body: vs.PublishSessions = call.body
    return await _publish(call, list(body.rows))


async def publish_csv(call: Call) -> web.Response:
    raw = await read_csv(call.request, "sessions")
    try:
        # utf-8-sig: spreadsheets often save UTF-8 with a byte-order mark.
        text = raw.decode("utf-8-sig")
        refuse_nul_in_text(text)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        records = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValidationFailed(
            "The body is not a UTF-8 CSV file.",
            errors=[{"row": None, "field": "body", "message": str(exc)}],
        ) from exc
    required = {"product", "day", "start", "end", "capacity"}
    missing = required - set(reader.fieldnames or [])
    if missing:
        raise ValidationFailed(
            "The CSV header must name product,day,start,end,capacity[,release_at].",
            errors=[
                {"row": None, "field": f, "message": "missing column"} for f in sorted(missing)
            ],
        )
    rows: list[Any] = []
    for record in records:
        if None in record:  # more cells than header columns
            rows.append({"_extra": record.pop(None)} | record)
            continue
        rows.append({k: v for k, v in record.items() if not (k == "release_at" and not v)})
    if len(rows) > 5000:
        raise ValidationFailed(errors=[{"row": None, "field": "rows", "message": "at most 5000"}])
    return await _publish(call, rows)


async def site_appointments(call: Call) -> web.Response:
    provider_id = await _site_of(call)
    q: vs.DayQuery = call.query
    now = _now(call)
    async with call.services.pool.acquire() as conn:
        rows = await store.appointments_of_site_day(conn, provider_id, q.day)
    views = [vaccine_record.appointment_view(r, now) for r in rows]
    for v in views:
        v["verification_code"] = None  # staff see who comes, the code stays with the citizen
    return json_response({"day": q.day.isoformat(), "appointments": views})


async def check_in(call: Call) -> web.Response:
    provider_id = await _site_of(call)
    body: vs.CheckIn = call.body
    view = await vaccine_record.check_in(
        call.services, provider_id=provider_id, code=body.code, actor=_actor(call.principal)
    )
    return json_response(view)


async def dose_given(call: Call) -> web.Response:
    provider_id = await _site_of(call)
    body: vs.DoseGiven = call.body
    view = await vaccine_record.record_given(
        call.services,
        provider_id=provider_id,
        appointment_id=call.path("appointment_id"),
        lot=body.lot,
        actor=_actor(call.principal),
    )
    return json_response(view)


async def grant_groups(call: Call) -> web.Response:
    body: vs.GrantGroups = call.body
    try:
        rid = parse_resident_id(
            body.id_number,
            hmac_key=call.services.id_hmac_key,
            today=_now(call).astimezone(CHINA).date(),
        )
    except InvalidIdNumber as exc:
        raise ValidationFailed(errors=[{"field": "id_number", "message": str(exc)}]) from exc
    async with call.services.pool.acquire() as conn:
        await store.grant_groups(conn, rid.hmac_hex, body.groups, _now(call))
        groups = await store.person_groups(conn, rid.hmac_hex)
    return json_response({"id_masked": rid.masked, "groups": sorted(groups)})


# --- vaccine waitlist (issue 5) ------------------------------------------------------------
async def waitlist_file(call: Call) -> web.Response:
    body: vs.VaccineWaitlistIn = call.body
    view = await vaccine_waitlist.file_order(
        call.services,
        account_id=call.citizen_id,
        campaign_id=body.campaign_id,
        passenger_id=body.passenger_id,
        site_id=body.site_id,
        city_code=body.city_code,
        district=body.district,
        first_day=body.first_day,
        last_day=body.last_day,
        deadline=body.deadline,
        idempotency_key=idempotency_key(call),
    )
    return json_response(view, status=201)


async def waitlist_mine(call: Call) -> web.Response:
    return json_response(
        {"orders": await vaccine_waitlist.my_orders(call.services, call.citizen_id)}
    )


async def waitlist_one(call: Call) -> web.Response:
    return json_response(
        await vaccine_waitlist.my_order(call.services, call.citizen_id, call.path("order_id"))
    )


async def waitlist_cancel(call: Call) -> web.Response:
    return json_response(
        await vaccine_waitlist.cancel_order(call.services, call.citizen_id, call.path("order_id"))
    )


WAITLIST_ROUTES: list[Route] = [
    Route(
        "POST",
        "/v1/vaccine/waitlist",
        waitlist_file,
        "Wait for a product at a site or any site of a district over days, until a deadline",
        "vaccine",
        roles=CITIZEN,
        body=vs.VaccineWaitlistIn,
        responses={
            201: "Waiting, with the position",
            403: "The listed person has not consented",
            409: "not_eligible, not_sold_out (book it), nothing_to_wait_for, waitlist_cap",
            422: "bad_waitlist_order",
        },
    ),
    Route(
        "GET",
        "/v1/vaccine/waitlist",
        waitlist_mine,
        "My vaccine waitlist orders with their positions",
        "vaccine",
        roles=CITIZEN,
    ),
    Route(
        "GET",
        "/v1/vaccine/waitlist/{order_id}",
        waitlist_one,
        "One vaccine waitlist order: state, position, the series it got",
        "vaccine",
        roles=CITIZEN,
        responses={404: "No such order (or not yours)"},
    ),
    Route(
        "POST",
        "/v1/vaccine/waitlist/{order_id}/cancel",
        waitlist_cancel,
        "Stop waiting",
        "vaccine",
        roles=CITIZEN,
        responses={404: "No such order (or not yours)", 409: "not_waiting"},
    ),
]


ROUTES: list[Route] = [
    Route(
        "GET",
        "/v1/vaccine/catalogue",
        catalogue,
        "Vaccine products (dose schedules) and campaigns (eligibility)",
        "vaccine",
    ),
    Route(
        "GET",
        "/v1/vaccine/sites",
        find_sites,
        "Find vaccination sites by city and district (with places left for a product/day)",
        "vaccine",
        query=vs.SiteQuery,
    ),
    Route(
        "GET",
        "/v1/vaccine/sites/{site_id}/slots",
        site_slots,
        "A site's session slots with places left",
        "vaccine",
        query=vs.SiteSlotsQuery,
        responses={404: "No such vaccination site"},
    ),
    Route(
        "GET",
        "/v1/vaccine/eligibility",
        check_eligibility,
        "May this person (self or a consenting listed person) book the next dose that day?",
        "vaccine",
        roles=CITIZEN,
        query=vs.EligibilityQuery,
        responses={403: "The listed person has not consented"},
    ),
    Route(
        "POST",
        "/v1/vaccine/bookings",
        book,
        "Hold one dose or a series (dose 1 with dose 2: both or neither); send Idempotency-Key",
        "vaccine",
        roles=CITIZEN,
        body=vs.BookVaccine,
        responses={
            201: "Held until the deadline; confirm to make the appointments",
            200: "Replay of an earlier request",
            403: "The listed person has not consented",
            409: "Not eligible (reason), sold out, not released, person already booked",
            422: "Invalid slots (other product, several sites) or fields",
            429: "Too many unpaid holds",
        },
    ),
    Route(
        "GET",
        "/v1/vaccine/bookings/{series_id}",
        get_booking,
        "One of the account's vaccine bookings",
        "vaccine",
        roles=CITIZEN,
        responses={404: "No such booking (or not yours)"},
    ),
    Route(
        "POST",
        "/v1/vaccine/bookings/{series_id}/confirm",
        confirm,
        "Confirm every held dose of a booking, or none; committed before the answer",
        "vaccine",
        roles=CITIZEN,
        responses={
            409: "A dose's hold expired or was cancelled (nothing confirmed)",
            503: "Storage unavailable; retry",
        },
    ),
    Route(
        "POST",
        "/v1/vaccine/bookings/{series_id}/cancel",
        cancel,
        "Cancel every dose of a booking not given yet (last dose first)",
        "vaccine",
        roles=CITIZEN,
        responses={404: "No such booking (or not yours)"},
    ),
    Route(
        "POST",
        "/v1/vaccine/appointments/{appointment_id}/reschedule",
        reschedule,
        "Move a confirmed dose; later doses are kept, moved to a fitting slot, or released",
        "vaccine",
        roles=CITIZEN,
        body=vs.Reschedule,
        responses={
            409: "Not confirmed, not eligible that day, or the new slot is full",
            404: "No such appointment or slot",
        },
    ),
    Route(
        "GET",
        "/v1/vaccine/appointments",
        my_appointments,
        "Appointments booked by this account (for self and for others)",
        "vaccine",
        roles=CITIZEN,
    ),
    Route(
        "GET",
        "/v1/vaccine/record",
        my_record,
        "A vaccination record: doses given, next dose due, appointments (self or ?passenger_id)",
        "vaccine",
        roles=CITIZEN,
        query=vs.PersonQuery,
        responses={403: "The listed person has not consented", 404: "No such passenger"},
    ),
    Route(
        "POST",
        "/v1/passengers/{passenger_id}/consent",
        give_consent,
        "Record that a listed person consents to vaccine bookings by this account",
        "vaccine",
        roles=CITIZEN,
        body=vs.Consent,
        responses={201: "Consent recorded", 404: "No such passenger (or not yours)"},
    ),
    Route(
        "DELETE",
        "/v1/passengers/{passenger_id}/consent",
        withdraw_consent,
        "Withdraw a listed person's consent (existing appointments stay)",
        "vaccine",
        roles=CITIZEN,
        responses={204: "Withdrawn", 404: "No such passenger (or not yours)"},
    ),
    Route(
        "POST",
        "/v1/providers/{provider_id}/vaccine/sessions",
        publish_json,
        "Publish session slots (JSON rows; all or nothing, every bad row listed)",
        "vaccine-staff",
        roles=STAFF,
        body=vs.PublishSessions,
        responses={
            201: "Published (identical slots are recognised, not duplicated)",
            422: "Offending rows listed; nothing published",
            403: "Key of another provider",
        },
    ),
    Route(
        "POST",
        "/v1/providers/{provider_id}/vaccine/sessions.csv",
        publish_csv,
        "Publish session slots as CSV: product,day,start,end,capacity[,release_at]",
        "vaccine-staff",
        roles=STAFF,
        raw_body=("text/csv",),
        responses={
            201: "Published",
            415: "Not text/csv",
            422: "Offending rows listed (row 0 = first data row); nothing published",
        },
    ),
    Route(
        "GET",
        "/v1/providers/{provider_id}/vaccine/appointments",
        site_appointments,
        "A day's appointments at a site",
        "vaccine-staff",
        roles=STAFF,
        query=vs.DayQuery,
    ),
    Route(
        "POST",
        "/v1/providers/{provider_id}/vaccine/check-in",
        check_in,
        "Check an arrival in by the verification code of their appointment (today)",
        "vaccine-staff",
        roles=STAFF,
        body=vs.CheckIn,
        responses={404: "No appointment with this code here", 409: "Not today or not confirmed"},
    ),
    Route(
        "POST",
        "/v1/providers/{provider_id}/vaccine/appointments/{appointment_id}/given",
        dose_given,
        "Record the appointment's dose as given (audited)",
        "vaccine-staff",
        roles=STAFF,
        body=vs.DoseGiven,
        responses={404: "No such appointment here", 409: "Not confirmed or out of dose order"},
    ),
    Route(
        "POST",
        "/v1/vaccine/priority-groups",
        grant_groups,
        "Operator: attest a person's priority groups (e.g. medical) for priority campaigns",
        "vaccine-staff",
        roles=OPERATOR,
        body=vs.GrantGroups,
    ),
]
# Route names must be unique in the app: handler names like ``book`` are not.
ROUTES = [
    dataclasses.replace(r, operation_id=f"vaccine_{r.handler.__name__}")
    for r in [*ROUTES, *WAITLIST_ROUTES]
]
