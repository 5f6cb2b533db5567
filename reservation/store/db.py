"""The Postgres pool, and which asyncpg errors mean "unavailable, retry" (by class)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson

# SQLSTATE classes 08 (connection), 53 (resources), 57 (operator intervention, e.g.
# shutdown), 58 (system error): the database cannot serve us now; the same call may work
# later. Everything else is about the statement or the data.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")
# The epoch fence refused a commit: a rebuild started after the change was made in Redis
# (migration 0014). The same request, retried, runs against the rebuilt inventory.
FENCE_SQLSTATE = "FS001"

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


def is_fenced_out(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate == FENCE_SQLSTATE


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state[:2] in _TRANSIENT_SQLSTATE_CLASSES or state == FENCE_SQLSTATE
    if isinstance(exc, asyncpg.InterfaceError):
        # Client-side errors: a bad argument (its DataError subclass) is about the data and
        # never heals; a closed connection or pool does once the database is back.
        return not isinstance(exc, ValueError) and "clos" in str(exc).lower()
    return isinstance(exc, TRANSIENT_ERRORS)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


class Pool:
    """An asyncpg pool whose ``acquire()`` waits at most ``acquire_timeout`` seconds.

    asyncpg waits forever for a free connection by default; at the rush that would queue
    requests without bound. A wait past the limit raises TimeoutError, which the error
    middleware answers with 503 and Retry-After. Everything else is the asyncpg pool's.
    """

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return self._pool.acquire(timeout=timeout or self._acquire_timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, acquire_timeout: float = 5.0
) -> Any:
    # Short timeouts: a hung database must become a quick 503, not a 20 s wait.
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=5,
        timeout=5,
    )
    return Pool(pool, acquire_timeout)
