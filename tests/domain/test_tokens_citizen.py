"""Citizen bearer tokens: signed, expiring, carrying the person key (pure)."""

from __future__ import annotations

import pytest

from reservation.auth import TokenSigner
from reservation.errors import Unauthorized

SIGNER = TokenSigner(b"secret", ttl_seconds=60)


def test_round_trip_with_and_without_person() -> None:
    assert SIGNER.verify(SIGNER.issue("a1", now_s=100, person="f" * 64), now_s=100) == (
        "a1",
        "f" * 64,
    )
    assert SIGNER.verify(SIGNER.issue("a1", now_s=100), now_s=100) == ("a1", None)


def test_the_person_cannot_be_swapped() -> None:
    token = SIGNER.issue("a1", now_s=100, person="a" * 64)
    forged = token.replace("a" * 64, "b" * 64)
    with pytest.raises(Unauthorized):
        SIGNER.verify(forged, now_s=100)


def test_expiry_and_other_keys() -> None:
    token = SIGNER.issue("a1", now_s=100, person="c" * 64)
    with pytest.raises(Unauthorized):
        SIGNER.verify(token, now_s=161)
    with pytest.raises(Unauthorized):
        TokenSigner(b"other", ttl_seconds=60).verify(token, now_s=100)
