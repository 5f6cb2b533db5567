"""Signed queue tokens: proof that an account reached the front of a sale's queue.

Pure (no I/O, no clock): time arrives as ``now_ms``. A token is

    qt1.<payload>.<signature>

- ``payload``: base64url (no padding) of the UTF-8 JSON object with the keys ``account``,
  ``expires_ms``, ``issued_ms``, ``nonce``, ``position``, ``sale`` (sorted, no spaces);
- ``signature``: base64url (no padding) of ``HMAC-SHA256(k, "qt1." + payload)``, where
  ``k = HMAC-SHA256(secret_key, "fairseat/queue-token/1")``. Deriving a key of its own
  keeps queue tokens and citizen tokens (same secret) from ever passing for each other.

``verify`` checks, in order: shape and signature (``QueueTokenForged``), sale
(``QueueTokenWrongSale``), account (``QueueTokenWrongAccount``), expiry
(``QueueTokenExpired``, at ``now_ms >= expires_ms``). The signature is checked before the
payload is parsed, so unauthenticated input is never interpreted.

Single use is not a property of the token but of a ledger: the caller spends the nonce
once in Redis (``inventory.fairness_engine.TokenLedger.use``) after ``verify`` passed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from reservation.fairness.errors import (
    QueueTokenExpired,
    QueueTokenForged,
    QueueTokenWrongAccount,
    QueueTokenWrongSale,
)

PREFIX = "qt1"
_KEY_LABEL = b"fairseat/queue-token/1"
_FIELDS = ("account", "expires_ms", "issued_ms", "nonce", "position", "sale")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class QueueToken:
    sale_id: str
    account_id: str
    position: int
    issued_ms: int
    expires_ms: int
    nonce: str  # 128 random bits, base64url: the single-use record's name

    def payload(self) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "expires_ms": self.expires_ms,
            "issued_ms": self.issued_ms,
            "nonce": self.nonce,
            "position": self.position,
            "sale": self.sale_id,
        }


class QueueTokenSigner:
    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the queue token secret must not be empty")
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()

    def _sign(self, signed_part: str) -> str:
        return _b64(hmac.new(self._key, signed_part.encode("ascii"), hashlib.sha256).digest())

    def issue(
        self,
        *,
        sale_id: str,
        account_id: str,
        position: int,
        now_ms: int,
        ttl_ms: int,
        nonce: str | None = None,
    ) -> tuple[str, QueueToken]:
        """A new token (and what it says) valid from ``now_ms`` for ``ttl_ms``."""
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        token = QueueToken(
            sale_id=sale_id,
            account_id=account_id,
            position=position,
            issued_ms=now_ms,
            expires_ms=now_ms + ttl_ms,
            nonce=nonce or secrets.token_urlsafe(16),
        )
        body = json.dumps(token.payload(), sort_keys=True, separators=(",", ":"))
        signed_part = f"{PREFIX}.{_b64(body.encode())}"
        return f"{signed_part}.{self._sign(signed_part)}", token

    def verify(self, text: str, *, sale_id: str, account_id: str, now_ms: int) -> QueueToken:
        """The token's contents if it admits ``account_id`` to ``sale_id`` at ``now_ms``;
        raises a ``QueueTokenError`` subclass otherwise. Does not spend it."""
        parts = text.split(".")
        if not text.isascii() or len(parts) != 3 or parts[0] != PREFIX:
            raise QueueTokenForged()
        signed_part = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(signed_part), parts[2]):
            raise QueueTokenForged()
        token = _parse(parts[1])
        if token.sale_id != sale_id:
            raise QueueTokenWrongSale()
        if not hmac.compare_digest(token.account_id.encode(), account_id.encode()):
            raise QueueTokenWrongAccount()
        if now_ms >= token.expires_ms:
            raise QueueTokenExpired(expired_ms=token.expires_ms)
        return token


def _parse(payload: str) -> QueueToken:
    # Only reached with a valid signature: a failure here means our own bug or a key
    # shared with a foreign signer, still answered as "invalid".
    try:
        raw = json.loads(_unb64(payload))
    except (binascii.Error, ValueError) as exc:
        raise QueueTokenForged() from exc
    if not isinstance(raw, dict) or tuple(sorted(raw)) != _FIELDS:
        raise QueueTokenForged()
    strings = (raw["sale"], raw["account"], raw["nonce"])
    numbers = (raw["position"], raw["issued_ms"], raw["expires_ms"])
    if not all(isinstance(v, str) for v in strings) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in numbers
    ):
        raise QueueTokenForged()
    return QueueToken(
        sale_id=raw["sale"],
        account_id=raw["account"],
        position=raw["position"],
        issued_ms=raw["issued_ms"],
        expires_ms=raw["expires_ms"],
        nonce=raw["nonce"],
    )
