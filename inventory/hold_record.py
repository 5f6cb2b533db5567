"""How a seat hold's record is stored in Redis, and how readers get its fields back.

A seat hold is a hash. The fields fixed when the hold is made (:data:`FIXED`, in this
order) are one field, ``i``, their values joined by the ASCII unit separator (0x1f), as
in an outbox event (:mod:`inventory.outbox_event`); the fields that change later stay
fields of their own: ``state``, ``confirmed``, ``changed_to``, ``ended``, ``gone``,
``gone_at:<place>``, ``abort:<new hold>`` and a waitlist hold's ``waitlist``.

Packed because a hash's cost in Redis grows with its field count: a hash of thirteen
fields took a seat hold 27 arguments to write (each an object, a listpack append that
reallocates, and an AOF record of its own), and every release read twelve of them back.
One packed field cut a hold's server instructions by ~9 % (callgrind, ``bench seats``).
``inventory/lua/include/seat_hold_record.lua`` unpacks it in Lua. The values carry no
0x1f: ids and codes are generated or checked, and the outbox relies on the same.
"""

from __future__ import annotations

from collections.abc import Mapping

FIELD = "i"
SEPARATOR = "\x1f"
FIXED = (
    "kind",
    "run",
    "cls",
    "acct",
    "a",
    "b",
    "seats",
    "pax",
    "deadline",
    "change_of",
    "fp",
    "wish_met",
)


def pack(values: Mapping[str, str]) -> str:
    """The ``i`` field of a record with these fixed fields (missing ones are empty)."""
    return SEPARATOR.join(values.get(name, "") for name in FIXED)


def unpack(packed: str) -> dict[str, str]:
    """The fixed fields of an ``i`` field, by name."""
    parts = packed.split(SEPARATOR)
    if len(parts) != len(FIXED):
        raise ValueError(f"seat hold record with {len(parts)} packed fields: {packed!r}")
    return dict(zip(FIXED, parts, strict=True))


def record_fields(raw: Mapping[str, str]) -> dict[str, str]:
    """A record's fields by name, ``i`` unpacked; records without ``i`` read as they are."""
    out = dict(raw)
    packed = out.pop(FIELD, None)
    if packed is not None:
        out.update(unpack(packed))
    return out
