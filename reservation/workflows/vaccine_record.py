"""A person's vaccination record, eligibility, and the site's side: check-in and doses given.

Always: a dose is recorded as given once per person, product and dose number, only for a
confirmed appointment at the recording site, in dose order; staff actions are audited in
the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from reservation.domain.clock import CHINA, from_ms, iso
from reservation.domain.vaccine import (
    LIVE_APPOINTMENT_STATES,
    PlannedDose,
    check_plan,
    effective_state,
    next_due,
)
from reservation.domain.verification import display, normalise
from reservation.errors import Conflict, NotFound
from reservation.fairness import audit
from reservation.services import Services
from reservation.store import vaccine as store
from reservation.workflows.vaccine_people import Person


def today_of(services: Services) -> dt.date:
    return from_ms(services.clock()).astimezone(CHINA).date()


def appointment_view(row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    state = effective_state(row["state"], row.get("booking_state"), row["deadline"], now)
    code = row.get("verification_code")
    return {
        "id": row["id"],
        "series_id": row["series_id"],
        "product": row["product_code"],
        "campaign_id": row["campaign_id"],
        "dose": row["dose"],
        "state": state,
        "site_id": row["provider_id"],
        "site_name": row.get("site_name"),
        "slot_id": row["slot_id"],
        "starts_at": iso(row["starts_at"]),
        "ends_at": iso(row.get("ends_at")),
        "deadline": iso(row["deadline"]) if state == "held" else None,
        "verification_code": display(code) if code and state == "confirmed" else None,
        "checked_in_at": iso(row.get("checked_in_at")),
        "moved_to": row.get("moved_to"),
        "person": {
            "name": row["person_name"],
            "id_masked": row["person_masked"],
            "passenger_id": row["passenger_id"],
        },
    }


async def record_of(services: Services, conn: Any, person: Person) -> dict[str, Any]:
    now = from_ms(services.clock())
    products = await store.products(conn)
    doses = await store.doses_of_person(conn, person.hmac)
    appointments = await store.appointments_of_person(conn, person.hmac)
    out = []
    for code, product in products.items():
        given = [d for d in doses if d["product_code"] == code]
        upcoming = [
            appointment_view(a, now)
            for a in appointments
            if a["product_code"] == code
            and effective_state(a["state"], a["booking_state"], a["deadline"], now)
            in LIVE_APPOINTMENT_STATES
        ]
        if not given and not upcoming:
            continue
        due = next_due(product, [d["given_on"] for d in given])
        out.append(
            {
                "product": code,
                "name": product.name,
                "doses": product.doses,
                "given": [
                    {
                        "dose": d["dose"],
                        "given_on": d["given_on"].isoformat(),
                        "site_id": d["provider_id"],
                        "site_name": d["site_name"],
                        "lot": d["lot"],
                    }
                    for d in given
                ],
                "complete": due is None,
                "next_due": None
                if due is None
                else {
                    "dose": due[0],
                    "from": due[1].isoformat() if due[1] else None,
                    "until": due[2].isoformat() if due[2] else None,
                },
                "appointments": upcoming,
            }
        )
    return {
        "person": {
            "name": person.name,
            "id_masked": person.masked,
            "birth_date": person.birth.isoformat(),
            "passenger_id": person.passenger_id,
        },
        "products": out,
    }


async def eligibility(
    services: Services, conn: Any, person: Person, campaign_id: str, day: dt.date
) -> dict[str, Any]:
    """Whether the person may book the next dose of the campaign's product on ``day``."""
    found = await store.campaign(conn, campaign_id)
    if found is None:
        raise NotFound("No such campaign.")
    now = from_ms(services.clock())
    product = found.product
    given = [d["given_on"] for d in await store.doses_of_person(conn, person.hmac, product.code)]
    live = sorted(
        (
            a
            for a in await store.appointments_of_person(conn, person.hmac, product.code)
            if effective_state(a["state"], a["booking_state"], a["deadline"], now)
            in LIVE_APPOINTMENT_STATES
            and a["dose"] > len(given)
        ),
        key=lambda a: a["dose"],
    )
    dose = len(given) + len(live) + 1
    refusal = check_plan(
        found,
        birth=person.birth,
        groups=await store.person_groups(conn, person.hmac),
        given=given,
        booked=[a["day"] for a in live],
        plan=[PlannedDose(dose, day)],
        moving=True,  # asks about one dose; the series rule is reported separately
    )
    return {
        "campaign_id": campaign_id,
        "product": product.code,
        "day": day.isoformat(),
        "eligible": refusal is None,
        "reason": refusal.code if refusal else None,
        "message": refusal.message if refusal else None,
        "next_dose": dose if dose <= product.doses else None,
        "book_with_next_dose": product.book_series and dose == 1 and product.doses >= 2,
    }


async def check_in(
    services: Services, *, provider_id: str, code: str, actor: str
) -> dict[str, Any]:
    """The citizen shows their code at the site on the appointment's day."""
    now = from_ms(services.clock())
    async with services.pool.acquire() as conn, conn.transaction():
        row = await store.by_code(conn, provider_id, normalise(code))
        if row is None:
            raise NotFound("No appointment at this site has this code.")
        state = effective_state(row["state"], row["booking_state"], row["deadline"], now)
        if state != "confirmed":
            raise Conflict(f"This appointment is {state}.", reason="not_confirmed")
        if row["day"] != today_of(services):
            raise Conflict(
                f"This appointment is on {row['day'].isoformat()}, not today.", reason="not_today"
            )
        if row["checked_in_at"] is None:
            await store.check_in(conn, row["id"], now)
            await audit.append(
                conn,
                audit.Kind.STAFF_ACTION,
                f"vaccine-site:{provider_id}",
                actor,
                {"action": "check_in", "appointment": row["id"]},
                at=now,
            )
        row = await store.appointment(conn, row["id"])
    assert row is not None
    return appointment_view(row, now)


async def record_given(
    services: Services, *, provider_id: str, appointment_id: str, lot: str, actor: str
) -> dict[str, Any]:
    now = from_ms(services.clock())
    async with services.pool.acquire() as conn, conn.transaction():
        row = await store.appointment(conn, appointment_id)
        if row is None or row["provider_id"] != provider_id:
            raise NotFound("No such appointment at this site.")
        await store.lock_person(conn, row["person_hmac"])
        given = await store.doses_of_person(conn, row["person_hmac"], row["product_code"])
        if row["state"] == "given":
            return appointment_view(row, now)
        state = effective_state(row["state"], row["booking_state"], row["deadline"], now)
        if state != "confirmed":
            raise Conflict(f"This appointment is {state}.", reason="not_confirmed")
        if row["dose"] != len(given) + 1:
            raise Conflict(
                f"The person's next dose is dose {len(given) + 1}, not dose {row['dose']}.",
                reason="dose_order",
            )
        await store.record_dose(
            conn,
            person_hmac=row["person_hmac"],
            product_code=row["product_code"],
            dose=row["dose"],
            given_on=today_of(services),
            given_at=now,
            provider_id=provider_id,
            appointment_id=appointment_id,
            lot=lot,
            recorded_by=actor,
        )
        await audit.append(
            conn,
            audit.Kind.STAFF_ACTION,
            f"vaccine-site:{provider_id}",
            actor,
            {
                "action": "dose_given",
                "appointment": appointment_id,
                "product": row["product_code"],
                "dose": row["dose"],
                "lot": lot,
            },
            at=now,
        )
        row = await store.appointment(conn, appointment_id)
    assert row is not None
    return appointment_view(row, now)
