"""A lean path for the hot script calls: EVALSHA on a small pool of our own connections.

Why not just redis-py's client: its generic path (pool conditions, observability hooks,
timeouts, pipeline bookkeeping, SCRIPT EXISTS before every pipeline) costs several times
what the Redis server spends on one of our scripts, and at the rush every hold pays it.
This module keeps redis-py's connections and RESP parser (hiredis) and drops the rest:

- connections are taken LIFO from a free list; callers queue when all are busy and get a
  ``ConnectionError`` (a 503 upstream) after ``acquire_timeout``;
- several scripts for one request go out in one write and come back in order;
- NOSCRIPT (a restart or failover lost the script cache) loads the script and re-runs
  that call; a broken connection is dropped and the whole batch retried once. Every
  script is idempotent (ids derived from idempotency keys), so re-running is safe;
- Redis Cluster clients are passed through to redis-py, which routes by hash slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Call = tuple[Any, list[str], list[Any]]  # (registered script, keys, args)

_RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class ScriptClient:
    def __init__(self, client: Any, *, max_connections: int = 64,
                 acquire_timeout: float = 5.0) -> None:
        self.client = client
        self._cluster = not hasattr(client, "connection_pool")
        self._max = max_connections
        self._timeout = acquire_timeout
        self._free: list[Any] = []
        self._count = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closing: set[asyncio.Task[Any]] = set()

    # Connections -----------------------------------------------------------------------
    def _new_connection(self) -> Any:
        pool = self.client.connection_pool
        return pool.connection_class(**pool.connection_kwargs)

    async def _acquire(self) -> Any:
        if self._free:
            return self._free.pop()
        if self._count < self._max:
            self._count += 1
            return self._new_connection()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, self._timeout)
        except TimeoutError as exc:
            raise RedisConnectionError("No Redis connection available (pool busy).") from exc

    def _release(self, conn: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._free.append(conn)

    def _discard(self, conn: Any) -> None:
        self._count -= 1
        task = asyncio.ensure_future(conn.disconnect())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        # A waiter may now create a fresh connection.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._count += 1
                waiter.set_result(self._new_connection())
                return

    async def aclose(self) -> None:
        conns, self._free = self._free, []
        self._count -= len(conns)
        await asyncio.gather(*(c.disconnect() for c in conns), *self._closing,
                             return_exceptions=True)

    # Calls -----------------------------------------------------------------------------
    async def call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        return (await self.call_many([(script, keys, args)]))[0]

    async def call_many(self, calls: list[Call]) -> list[Any]:
        """Run the scripts in order in one round trip; raise the first error reply."""
        if self._cluster:
            return await self._call_many_cluster(calls)
        for attempt in (1, 2):
            conn = await self._acquire()
            try:
                results = await self._exchange(conn, calls)
            except _RETRYABLE:
                self._discard(conn)
                if attempt == 2:
                    raise
                continue
            except BaseException:
                # Cancelled mid-exchange: replies may be left unread; never reuse it.
                self._discard(conn)
                raise
            self._release(conn)
            return await self._finish(calls, results)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, conn: Any, calls: list[Call]) -> list[Any]:
        if conn.is_connected is False:
            await conn.connect()
        packed = conn.pack_commands(
            [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args in calls])
        await conn.send_packed_command(packed, check_health=False)
        results: list[Any] = []
        for _ in calls:
            try:
                results.append(await conn.read_response())
            except ResponseError as exc:  # an error reply; the next replies are intact
                results.append(exc)
        return results

    async def _finish(self, calls: list[Call], results: list[Any]) -> list[Any]:
        for i, result in enumerate(results):
            if isinstance(result, NoScriptError):
                script, keys, args = calls[i]
                script.sha = await self.client.script_load(script.script)
                results[i] = await self.client.evalsha(script.sha, len(keys), *keys, *args)
            elif isinstance(result, Exception):
                raise result
        return results

    async def _call_many_cluster(self, calls: list[Call]) -> list[Any]:
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [await script(keys=keys, args=args)]
        async with self.client.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return await self._finish(calls, results)
