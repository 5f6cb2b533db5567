"""How our Lua scripts write an outbox event, and how readers get its fields back.

An event is one stream field, ``e``: its names and values alternately, joined by the ASCII
unit separator (0x1f). One field rather than a field per value because a stream entry's
cost in Redis grows with its argument count (argument objects, listpack entries, the
AOF record of every argument): thirteen pairs made the outbox XADD the dearest single
call of a seat hold (``docs/benchmarks.md``). Entries written the older way, a field per
value, read the same.
"""

from __future__ import annotations

from collections.abc import Mapping

FIELD = "e"
SEPARATOR = "\x1f"


def event_fields(raw: Mapping[str, str]) -> dict[str, str]:
    """The event's fields by name, whichever way the entry was written."""
    packed = raw.get(FIELD)
    if packed is None or len(raw) != 1:
        return dict(raw)
    parts = packed.split(SEPARATOR)
    if len(parts) % 2:
        raise ValueError(f"packed outbox event with an odd number of parts: {packed!r}")
    return dict(zip(parts[::2], parts[1::2], strict=True))
