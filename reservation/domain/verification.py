"""E-ticket verification codes (pure; no I/O).

A code is derived, never stored as a secret of its own: HMAC-SHA256 of the ticket id under
a key from settings, read as a number and written in an alphabet without look-alikes
(no 0/O, 1/I/L, U), ``LENGTH`` characters: 30^8 ≈ 6.6·10^11 codes, so guessing one for a
given ticket takes that many tries, and the code proves the ticket was issued here.
Reading it back forgives case, spaces and dashes.
"""

from __future__ import annotations

import hashlib
import hmac

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8
_CONTEXT = b"fairseat e-ticket v1\n"  # a key used elsewhere never yields these codes


def verification_code(ticket_id: str, key: bytes) -> str:
    if not ticket_id:
        raise ValueError("a ticket id is required")
    digest = hmac.new(key, _CONTEXT + ticket_id.encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest, "big")
    out = []
    for _ in range(LENGTH):
        number, index = divmod(number, len(ALPHABET))
        out.append(ALPHABET[index])
    return "".join(out)


def normalise(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def check_code(ticket_id: str, code: str, key: bytes) -> bool:
    """Constant-time comparison of a presented code with the ticket's own."""
    # Bytes: compare_digest refuses non-ASCII str, and a presented code is user input.
    return hmac.compare_digest(normalise(code).encode(), verification_code(ticket_id, key).encode())


def display(code: str) -> str:
    """``ABCD-EFGH``: easier to read aloud at a gate."""
    return f"{code[:4]}-{code[4:]}"
