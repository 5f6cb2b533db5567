"""Citizen tokens verified once are answered from memory (issue 7, speed) without
loosening anything: expiry still applies, and a forged token never gets in."""

from __future__ import annotations

import time

import pytest

from reservation.auth import Authenticator, Role, TokenSigner
from reservation.errors import Unauthorized


async def test_a_cached_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = TokenSigner(b"secret", ttl_seconds=60)
    auth = Authenticator(signer, pool=None, operator_key=None)
    now = int(time.time())
    token = signer.issue("a0000000000000001", now_s=now, person="p1")
    for _ in range(2):  # verified, then from the cache
        who = await auth.authenticate(f"Bearer {token}")
        assert (who.role, who.account_id, who.person) == (Role.CITIZEN, "a0000000000000001", "p1")
    monkeypatch.setattr(time, "time", lambda: now + 61.0)
    with pytest.raises(Unauthorized):
        await auth.authenticate(f"Bearer {token}")


async def test_a_forged_token_is_refused_even_next_to_a_cached_one() -> None:
    signer = TokenSigner(b"secret", ttl_seconds=60)
    auth = Authenticator(signer, pool=None, operator_key=None)
    token = signer.issue("a0000000000000001")
    await auth.authenticate(f"Bearer {token}")
    payload, _, _signature = token.rpartition(".")
    forged = payload.replace("a0000000000000001", "a0000000000000002") + "." + _signature
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await auth.authenticate(f"Bearer {forged}")
