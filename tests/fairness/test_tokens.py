"""Queue tokens: forged, altered, expired, another account's or another sale's tokens are
refused; a genuine one is spent exactly once (TokenLedger on real Redis)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from inventory.fairness_engine import TokenLedger
from inventory.keys import Keys
from inventory.script_client import ScriptClient
from reservation.fairness.errors import (
    QueueTokenExpired,
    QueueTokenForged,
    QueueTokenWrongAccount,
    QueueTokenWrongSale,
    RateLimited,
)
from reservation.fairness.tokens import QueueToken, QueueTokenSigner

NOW = 1_800_000_000_000
TTL = 120_000
signer = QueueTokenSigner(b"test-secret")


def issue(**overrides: Any) -> tuple[str, QueueToken]:
    fields: dict[str, Any] = {
        "sale_id": "sale-1",
        "account_id": "a1",
        "position": 7,
        "now_ms": NOW,
        "ttl_ms": TTL,
    }
    fields.update(overrides)
    return signer.issue(**fields)


def test_a_genuine_token_verifies_until_it_expires() -> None:
    text, token = issue()
    assert text.startswith("qt1.")
    got = signer.verify(text, sale_id="sale-1", account_id="a1", now_ms=NOW + TTL - 1)
    assert got == token
    assert (got.position, got.issued_ms, got.expires_ms) == (7, NOW, NOW + TTL)
    assert len(base64.urlsafe_b64decode(got.nonce + "==")) == 16
    with pytest.raises(QueueTokenExpired):
        signer.verify(text, sale_id="sale-1", account_id="a1", now_ms=NOW + TTL)


def test_nonces_differ() -> None:
    assert issue()[1].nonce != issue()[1].nonce


def test_another_account_or_sale_is_refused() -> None:
    text, _ = issue()
    with pytest.raises(QueueTokenWrongAccount):
        signer.verify(text, sale_id="sale-1", account_id="a2", now_ms=NOW)
    with pytest.raises(QueueTokenWrongSale):
        signer.verify(text, sale_id="sale-2", account_id="a1", now_ms=NOW)


def _reencode(text: str, **changes: Any) -> str:
    """The same token with payload fields changed but the old signature kept."""
    prefix, payload, signature = text.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(changes)
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return f"{prefix}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{signature}"


@pytest.mark.parametrize(
    "changes",
    [{"account": "a2"}, {"position": 1}, {"expires_ms": NOW + 10 * TTL}, {"sale": "sale-2"}],
)
def test_an_altered_token_is_forged(changes: dict[str, Any]) -> None:
    text, _ = issue()
    altered = _reencode(text, **changes)
    account = changes.get("account", "a1")
    sale = changes.get("sale", "sale-1")
    with pytest.raises(QueueTokenForged):
        signer.verify(altered, sale_id=sale, account_id=account, now_ms=NOW)


@pytest.mark.parametrize(
    "text",
    ["", "qt1", "qt1..", "qt1.e30.", "ct.a1.1.x", "qt1.e30.AAAA", "qt1.ü.x", "qt1.a.b.c"],
)
def test_garbage_is_forged(text: str) -> None:
    with pytest.raises(QueueTokenForged):
        signer.verify(text, sale_id="sale-1", account_id="a1", now_ms=NOW)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"sale":"sale-1"}',
        b'{"account":"a1","expires_ms":"9","issued_ms":1,"nonce":"n","position":1,"sale":"sale-1"}',
    ],
)
def test_a_signed_but_malformed_payload_is_refused(payload: bytes) -> None:
    # Only a holder of the key could make these; still never a crash, never accepted.
    signed_part = "qt1." + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    text = f"{signed_part}.{signer._sign(signed_part)}"
    with pytest.raises(QueueTokenForged):
        signer.verify(text, sale_id="sale-1", account_id="a1", now_ms=NOW)


def test_another_key_is_forged() -> None:
    text, _ = QueueTokenSigner(b"someone-else").issue(
        sale_id="sale-1", account_id="a1", position=1, now_ms=NOW, ttl_ms=TTL
    )
    with pytest.raises(QueueTokenForged):
        signer.verify(text, sale_id="sale-1", account_id="a1", now_ms=NOW)


def test_a_citizen_token_signature_does_not_pass() -> None:
    # Same secret, but queue tokens use a derived key: a signature made the citizen-token
    # way over the same text is not a queue token signature.
    import hashlib
    import hmac

    text, _ = issue()
    prefix, payload, _sig = text.split(".")
    raw = hmac.new(b"test-secret", f"{prefix}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{prefix}.{payload}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"
    with pytest.raises(QueueTokenForged):
        signer.verify(forged, sale_id="sale-1", account_id="a1", now_ms=NOW)


def test_error_shapes() -> None:
    assert QueueTokenForged().http_status == 403
    assert QueueTokenExpired().code == "queue_token_expired"
    limited = RateLimited("acct", 1_001)
    assert (limited.http_status, limited.retry_after_s) == (429, 2)
    assert limited.to_dict()["fields"] == {"scope": "acct", "retry_after_ms": 1_001}
    assert RateLimited("ip", 1).retry_after_s == 1


# Single use, on Redis ----------------------------------------------------------------------
@pytest.fixture
async def ledger(redis_client: Any, key_prefix: str) -> Any:
    calls = ScriptClient(redis_client)
    ledger = TokenLedger(redis_client, Keys(prefix=key_prefix), calls, grace_ms=60_000)
    await ledger.load()
    yield ledger
    await calls.aclose()


async def test_a_token_is_spent_once(ledger: TokenLedger, redis_client: Any) -> None:
    text, token = issue()
    verified = signer.verify(text, sale_id="sale-1", account_id="a1", now_ms=NOW + 5)
    assert await ledger.use(verified.nonce, verified.expires_ms, NOW + 5) is True
    assert await ledger.use(verified.nonce, verified.expires_ms, NOW + 6) is False
    assert await ledger.use(verified.nonce, verified.expires_ms, NOW + TTL - 1) is False
    # The record outlives the token by the grace period, counted from the caller's clock.
    ttl = await redis_client.pttl(ledger.keys.token_used(token.nonce))
    assert TTL - 5 + 60_000 - 2_000 < ttl <= TTL - 5 + 60_000


async def test_an_expired_token_is_never_fresh(ledger: TokenLedger, redis_client: Any) -> None:
    _, token = issue()
    assert await ledger.use(token.nonce, token.expires_ms, token.expires_ms) is False
    assert await redis_client.exists(ledger.keys.token_used(token.nonce)) == 0


async def test_concurrent_replays_spend_once(ledger: TokenLedger) -> None:
    _, token = issue()
    results = await asyncio.gather(
        *(ledger.use(token.nonce, token.expires_ms, NOW) for _ in range(50))
    )
    assert results.count(True) == 1
