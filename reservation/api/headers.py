"""Request headers that several route modules read the same way."""

from __future__ import annotations

import re

from reservation.api.routing import Call
from reservation.errors import ValidationFailed

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def idempotency_key(call: Call) -> str | None:
    """The request's ``Idempotency-Key`` (None when absent); a malformed one is a 422."""
    key = call.request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationFailed(
            errors=[
                {
                    "field": "header.Idempotency-Key",
                    "message": "1 to 128 characters from A-Z a-z 0-9 and . _ : -",
                }
            ]
        )
    return key
