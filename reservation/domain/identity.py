"""Real-name identity: resident ID numbers (GB 11643) validated, keyed-hashed and masked.

The raw number never leaves this module in storable form: the store keeps only the keyed
HMAC (to find duplicates and enforce per-person rules) and a masked form (to show).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric


class InvalidIdNumber(ValueError):
    """The ID number is malformed, has a wrong check digit or an impossible birth date."""


@dataclass(frozen=True, slots=True)
class ResidentId:
    hmac_hex: str
    masked: str
    birth_date: dt.date


def parse_resident_id(raw: str, *, hmac_key: bytes, today: dt.date) -> ResidentId:
    """Validate an 18-digit resident ID number (check digit and birth date).

    python-stdnum does the GB 11643 checksum and date parsing; we add what it cannot
    know: a birth date in the future is impossible.
    """
    try:
        number = ric.validate(raw)
        birth = ric.get_birth_date(number)
    except stdnum_errors.ValidationError as exc:
        raise InvalidIdNumber(str(exc)) from exc
    if len(number) != 18:
        raise InvalidIdNumber("An 18-digit resident ID number is required.")
    if birth > today:
        raise InvalidIdNumber("The birth date in the ID number is in the future.")
    return ResidentId(hmac_hex=id_hmac(number, hmac_key), masked=mask_id(number), birth_date=birth)


def id_hmac(number: str, key: bytes) -> str:
    return hmac.new(key, number.upper().encode(), hashlib.sha256).hexdigest()


def mask_id(number: str) -> str:
    """``110105********002X``: region code and the last four, as 12306 shows it."""
    return number[:6] + "*" * 8 + number[-4:]


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"
