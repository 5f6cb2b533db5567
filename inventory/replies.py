"""Reading Redis replies: our clients decode them (``decode_responses=True``), but a
client made without it, or a reply nested in a script's table, may still hand us bytes."""

from __future__ import annotations

from typing import Any


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
