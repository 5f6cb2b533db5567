"""A redis-py asyncio connection that packs commands with hiredis, in C.

redis-py's synchronous client packs with ``hiredis.pack_command`` when hiredis is
installed, but its asyncio ``Connection`` packs every argument in Python. Our inventory
scripts send 10-25 arguments (keys, ids, passengers) per call, so packing was about a
quarter of a hold's client CPU in ``fairseat bench seats`` (cProfile); hiredis packs the
same bytes several times faster. Replies are parsed by hiredis already.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

_PLAIN = frozenset((str, int, bytes))


def pack_plain(args: Sequence[Any]) -> bytes | None:
    """``args`` packed by hiredis (C) when every one is a str, int or bytes (the common
    case: keys, ids, numbers), else None: the caller's careful path decides the rest."""
    if set(map(type, args)) <= _PLAIN:
        packed: bytes = hiredis.pack_command(tuple(args))
        return packed
    return None


def _plain(arg: Any) -> Any:
    # hiredis takes str, bytes and int; views become bytes, and floats are written as
    # redis-py writes them (repr), not with hiredis' own precision.
    if isinstance(arg, float):
        return repr(arg)
    return bytes(arg) if isinstance(arg, bytearray | memoryview) else arg


class HiredisPackConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        # Multi-word command names ("CLIENT SETNAME") are sent as separate arguments.
        head = args[0]
        if isinstance(head, str):
            if " " in head:
                args = (*head.split(), *args[1:])
        elif b" " in head:
            args = (*head.split(), *args[1:])
        # The common case, every argument a str, int or bytes, goes straight to hiredis
        # (one C call); anything else takes the careful path below.
        packed = pack_plain(args)
        if packed is not None:
            return [packed]
        for arg in args:
            # redis-py refuses these (DataError) rather than sending "True" or "None".
            if arg is None or isinstance(arg, bool):
                raise DataError(f"Invalid input of type: {type(arg).__name__!r}")
        try:
            return [hiredis.pack_command(tuple(_plain(a) for a in args))]
        except TypeError as exc:
            raise DataError(str(exc)) from exc

    def pack_commands(self, commands: Any) -> list[bytes]:
        # One buffer per pipeline: the commands are small, and one send is what we want.
        return [b"".join(self.pack_command(*cmd)[0] for cmd in commands)]
