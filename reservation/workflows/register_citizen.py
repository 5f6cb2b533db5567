"""A citizen registers with real name, phone and resident ID, or signs in again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reservation.auth import new_account_id
from reservation.domain.clock import CHINA, from_ms
from reservation.domain.identity import InvalidIdNumber, parse_resident_id
from reservation.errors import Unauthorized, ValidationFailed
from reservation.services import Services
from reservation.store import accounts as account_store


@dataclass(frozen=True, slots=True)
class Session:
    account_id: str
    token: str
    id_masked: str


def _today(services: Services) -> dt.date:
    return from_ms(services.clock()).astimezone(CHINA).date()


def _parse_id(services: Services, id_number: str) -> tuple[str, str, dt.date]:
    try:
        rid = parse_resident_id(id_number, hmac_key=services.id_hmac_key, today=_today(services))
    except InvalidIdNumber as exc:
        raise ValidationFailed(errors=[{"field": "id_number", "message": str(exc)}]) from exc
    return rid.hmac_hex, rid.masked, rid.birth_date


async def register(services: Services, *, name: str, phone: str, id_number: str) -> Session:
    id_hmac, masked, birth = _parse_id(services, id_number)
    account_id = new_account_id()
    async with services.pool.acquire() as conn:
        await account_store.create_account(
            conn,
            account_id=account_id,
            name=name,
            phone=phone,
            id_hmac=id_hmac,
            id_masked=masked,
            birth_date=birth,
        )
    return Session(account_id, services.auth.signer.issue(account_id, person=id_hmac), masked)


async def sign_in(services: Services, *, phone: str, id_number: str) -> Session:
    id_hmac, masked, _ = _parse_id(services, id_number)
    async with services.pool.acquire() as conn:
        row = await account_store.find_account_by_login(conn, phone, id_hmac)
    if row is None:
        raise Unauthorized("No account matches this phone and ID number.")
    return Session(row["id"], services.auth.signer.issue(row["id"], person=id_hmac), masked)
