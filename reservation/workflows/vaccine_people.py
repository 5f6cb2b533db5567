"""Who a vaccine booking is for: the account holder, or a consenting person on their list.

Always: booking for (or reading the record of) someone else on the account's passenger
list needs that person's recorded consent; the account holder needs none. The person's
own birth date (from their ID number) decides eligibility, and their ID HMAC names them in
the inventory and in their record, whichever account books for them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from reservation.errors import FairseatError, NotFound
from reservation.store import accounts as account_store
from reservation.store import passengers as passenger_store
from reservation.store import vaccine as store


class ConsentRequired(FairseatError):
    code = "consent_required"
    http_status = 403
    default_message = (
        "This person has not consented to be booked for by this account: record their "
        "consent first (POST /v1/passengers/{id}/consent)."
    )


class NotEligible(FairseatError):
    code = "not_eligible"
    http_status = 409
    default_message = "This person may not book this."


@dataclass(frozen=True, slots=True)
class Person:
    hmac: str
    name: str
    masked: str
    birth: dt.date
    passenger_id: str | None  # None: the account holder themself


async def resolve_person(conn: Any, account_id: str, passenger_id: str | None) -> Person:
    """The account holder (``passenger_id`` None or their own entry), or a listed person
    who consented. Another account's passenger is "not found"."""
    if passenger_id is not None:
        row = await passenger_store.get_passenger(conn, account_id, passenger_id)
        if row is None:
            raise NotFound("No such passenger.")
        if not row["is_holder"]:
            if await store.consent_of(conn, passenger_id) is None:
                raise ConsentRequired(passenger_id=passenger_id)
            return Person(
                row["id_hmac"], row["name"], row["id_masked"], row["birth_date"], passenger_id
            )
    account = await account_store.get_account(conn, account_id)
    if account is None:
        raise NotFound("No such account.")
    return Person(
        account["id_hmac"], account["name"], account["id_masked"], account["birth_date"], None
    )


async def record_consent(
    conn: Any, *, account_id: str, passenger_id: str, statement: str, at: dt.datetime
) -> dict[str, Any]:
    row = await passenger_store.get_passenger(conn, account_id, passenger_id)
    if row is None:
        raise NotFound("No such passenger.")
    return await store.set_consent(conn, passenger_id, account_id, statement, at)


async def revoke_consent(conn: Any, *, account_id: str, passenger_id: str, at: dt.datetime) -> bool:
    if await passenger_store.get_passenger(conn, account_id, passenger_id) is None:
        raise NotFound("No such passenger.")
    return await store.revoke_consent(conn, passenger_id, at)
