"""The public slot listings' catalogue part, reused for ``FAIRSEAT_LISTING_CACHE_MS``.

At an opening every citizen refreshes the same list (the famous doctor's slots, a vaccine
site's sessions) many times a second: in the vaccine rehearsal 92 % of all requests, each
two Postgres queries, until Postgres answered some with 503. The catalogue (which sessions
exist, their times, capacity, release time, status) changes only when staff publish or
cancel, so each process reuses it for a second; concurrent misses share one query. The
places left are read from Redis on every request, so the numbers a citizen sees are live.
A slot published or cancelled shows up to one cache period late; holding a cancelled one
is refused by the inventory either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from aiohttp import web

from reservation.api.routing import Call
from reservation.ttl_cache import TtlCache

T = TypeVar("T")

LISTINGS = web.AppKey("listings", TtlCache)


def install(app: web.Application, ttl_ms: int) -> None:
    app[LISTINGS] = TtlCache(ttl_ms / 1000)


async def catalogue(call: Call, key: Hashable, read: Callable[[Any], Awaitable[T]]) -> T:
    """``read(conn)``'s answer for ``key``, from this process's cache when fresh."""

    async def from_postgres() -> T:
        async with call.services.pool.acquire() as conn:
            return await read(conn)

    return await call.request.app[LISTINGS].get_or_load(key, from_postgres)
