"""Who is calling: citizens (signed bearer tokens), provider staff and operators (API keys).

Citizen tokens are stateless (``ct.<account>.<expiry>.<signature>``, HMAC-SHA256 with the
secret key): checking one costs no database round trip at peak. Staff keys are random,
stored hashed, and cached in-process for a short time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reservation.errors import Forbidden, Unauthorized
from reservation.store import accounts as account_store


class Role(StrEnum):
    CITIZEN = "citizen"
    STAFF = "staff"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    account_id: str | None = None
    provider_id: str | None = None
    # A citizen's person key (the keyed HMAC of their ID number), carried in the token so
    # that holding never needs a database read; None for tokens issued without it.
    person: str | None = None

    def require_citizen(self) -> str:
        if self.role is not Role.CITIZEN or self.account_id is None:
            raise Forbidden("Only a citizen account may do this.")
        return self.account_id

    def require_staff_of(self, provider_id: str) -> None:
        if self.role is Role.OPERATOR:
            return
        if self.role is not Role.STAFF or self.provider_id != provider_id:
            raise Forbidden("This key may act only for its own provider.")

    def require_operator(self) -> None:
        if self.role is not Role.OPERATOR:
            raise Forbidden("Only an operator may do this.")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = ttl_seconds

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()[:24])

    def issue(self, account_id: str, now_s: int | None = None, *, person: str | None = None) -> str:
        """``ct.<account>[~<person>].<expiry>.<signature>``: the person key rides along
        (it is already a keyed HMAC, not the ID number) so holds need no lookup."""
        expires = (int(time.time()) if now_s is None else now_s) + self._ttl
        subject = f"{account_id}~{person}" if person else account_id
        payload = f"ct.{subject}.{expires}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str, now_s: int | None = None) -> tuple[str, str | None]:
        """(account id, person key or None) of a valid, unexpired token; raises
        Unauthorized otherwise."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != "ct":
            raise Unauthorized("Malformed token.")
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(self._sign(payload), parts[3]):
            raise Unauthorized("Invalid token.")
        try:
            expires = int(parts[2])
        except ValueError as exc:
            raise Unauthorized("Malformed token.") from exc
        if expires < (int(time.time()) if now_s is None else now_s):
            raise Unauthorized("Token expired; sign in again.")
        account_id, _, person = parts[1].partition("~")
        return account_id, person or None


def new_api_key() -> str:
    return "sk_" + secrets.token_urlsafe(24)


def new_account_id() -> str:
    return "a" + secrets.token_hex(8)


class Authenticator:
    """Resolves an ``Authorization: Bearer …`` header to a Principal."""

    _CACHE_SECONDS = 30.0
    _CITIZEN_CACHE_LIMIT = 200_000

    def __init__(self, signer: TokenSigner, pool: Any, operator_key: str | None) -> None:
        self.signer = signer
        self._pool = pool
        self._operator_key = operator_key
        self._keys: dict[str, tuple[float, Principal | None]] = {}
        # token -> (expiry in s, account id, person key)
        self._citizens: dict[str, tuple[int, str, str | None]] = {}

    async def authenticate(self, header: str | None) -> Principal:
        if not header or not header.startswith("Bearer "):
            raise Unauthorized()
        credential = header[7:].strip()
        if not credential.isascii():  # every token and key is ASCII; compare_digest needs it
            raise Unauthorized("Unknown credential.")
        if credential.startswith("ct."):
            # A token verified before is answered from memory until it expires: an HMAC,
            # base64 and a split per request add up at the rush, and a citizen sends many
            # requests with one token. Only verified tokens enter the cache.
            # Entries hold only strings and ints: the garbage collector stops tracking such
            # tuples, so a big cache does not make its full collections slower.
            cached = self._citizens.get(credential)
            if cached is not None and cached[0] >= time.time():
                return Principal(Role.CITIZEN, account_id=cached[1], person=cached[2])
            account_id, person = self.signer.verify(credential)
            if len(self._citizens) >= self._CITIZEN_CACHE_LIMIT:
                self._citizens.clear()
            self._citizens[credential] = (int(credential.split(".")[2]), account_id, person)
            return Principal(Role.CITIZEN, account_id=account_id, person=person)
        if self._operator_key and hmac.compare_digest(credential, self._operator_key):
            return Principal(Role.OPERATOR)
        if credential.startswith("sk_"):
            principal = await self._lookup_key(credential)
            if principal is not None:
                return principal
        raise Unauthorized("Unknown credential.")

    async def _lookup_key(self, api_key: str) -> Principal | None:
        now = time.monotonic()
        cached = self._keys.get(api_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.acquire() as conn:
            row = await account_store.find_api_key(conn, api_key)
        principal = None
        if row is not None:
            principal = Principal(Role(row["role"]), provider_id=row["provider_id"])
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[api_key] = (now + self._CACHE_SECONDS, principal)
        return principal
