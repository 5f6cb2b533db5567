"""A lean, pipelining client for the hot path: EVALSHA of our registered scripts.

Why not redis-py for these calls: its generic path (a pool checkout, a timeout context per
read, a task per send, Python-level command packing) costs far more than Redis spends on
one of our scripts, and at the rush every hold pays it. Here:

- a few long-lived connections carry many requests at once (RESP is ordered per
  connection, so a FIFO of waiting futures is enough); hiredis parses the replies;
- everything written during one event-loop tick leaves in one write (auto-pipelining);
- several scripts of one request go out together and complete one future;
- NOSCRIPT (the script cache was lost in a restart or failover) loads the script and
  re-runs that call; a lost connection fails its waiting calls, which are retried once on
  a fresh connection. Every script is idempotent (ids come from idempotency keys), so a
  re-run is safe even if the first attempt did reach Redis;
- a watchdog closes a connection whose oldest call waited longer than ``call_timeout``.

redis-py still does everything else (reads, streams, admin), and serves Redis Cluster,
where it routes each call to the node owning its hash slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Awaitable
from typing import Any

import hiredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import BusyLoadingError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from inventory.fast_connection import pack_plain

Call = tuple[Any, list[str], list[Any]]  # (registered redis-py Script, keys, args)


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | float):
        return str(value).encode()
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def encode_command(parts: list[Any]) -> bytes:
    """One command in RESP. Every hot-path call (a script's keys and arguments: str and
    int) is packed by hiredis in C, as our redis-py connections pack; in Python this was
    ~13 % of an HTTP worker's CPU in a slot hold (py-spy). Anything else (a float, a bool)
    takes the Python path."""
    packed = pack_plain(parts)
    return packed if packed is not None else _encode_in_python(parts)


def _encode_in_python(parts: list[Any]) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = _encode(part)
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class _Pending:
    __slots__ = ("future", "remaining", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int) -> None:
        self.future = future
        self.remaining = count
        self.replies: list[Any] = []


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport
        self.reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self.pending: deque[_Pending] = deque()
        self.outgoing: list[bytes] = []
        self.flush_scheduled = False
        self.closed = False
        self.oldest_age = 0  # watchdog ticks the head of the queue has waited

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            head = self.pending[0]
            head.replies.append(reply)
            head.remaining -= 1
            if head.remaining == 0:
                self.pending.popleft()
                self.oldest_age = 0
                if not head.future.done():
                    head.future.set_result(head.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = RedisConnectionError(f"Redis connection lost: {exc!r}")
        while self.pending:
            waiting = self.pending.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(error)

    def send(self, packed: bytes, count: int) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        if self.closed:
            # Closed while the caller waited for it: fail now (nothing would ever answer).
            future.set_exception(RedisConnectionError("Redis connection closed"))
            return future
        self.pending.append(_Pending(future, count))
        self.outgoing.append(packed)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ScriptClient:
    """One per process (per event loop)."""

    def __init__(
        self,
        client: Any,
        *,
        connections: int = 4,
        call_timeout: float = 5.0,
        pipelining: bool = True,
    ) -> None:
        self.client = client
        # ``pipelining=False`` keeps every call on redis-py's own path (benchmarks compare).
        self._direct = pipelining and hasattr(client, "connection_pool")
        self._size = max(1, connections)
        self._timeout = call_timeout
        self._conns: list[_Connection | None] = [None] * self._size
        self._connecting: list[asyncio.Future[_Connection] | None] = [None] * self._size
        self._next = 0
        self._hot: _Connection | None = None
        self._watchdog: asyncio.Task[None] | None = None
        if self._direct:
            kw = client.connection_pool.connection_kwargs
            self._host = kw.get("host", "127.0.0.1")
            self._port = int(kw.get("port", 6379))
            self._password = kw.get("password")
            self._username = kw.get("username")
            self._db = int(kw.get("db", 0) or 0)
            # TLS and Unix sockets stay on redis-py's path. A subclass check, not the class
            # name: the service's pool uses a TCP subclass (HiredisPackConnection), and a
            # name check silently sent every hot-path call through redis-py (~4x the CPU).
            connection_class = client.connection_pool.connection_class
            self._direct = (
                kw.get("path") is None
                and not kw.get("ssl", False)
                and issubclass(connection_class, Connection)
                and not issubclass(connection_class, SSLConnection)
            )

    # Connections -----------------------------------------------------------------------
    async def _connect(self, index: int) -> _Connection:
        loop = asyncio.get_running_loop()
        _transport, conn = await loop.create_connection(
            lambda: _Connection(loop), self._host, self._port
        )
        with contextlib.suppress(OSError):
            sock = _transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        setup: list[list[Any]] = []
        if self._password:
            setup.append(["AUTH", *([self._username] if self._username else []), self._password])
        if self._db:
            setup.append(["SELECT", self._db])
        for command in setup:
            [reply] = await conn.send(encode_command(command), 1)
            if isinstance(reply, ResponseError):
                conn.close()
                raise RedisConnectionError(f"Redis refused {command[0]}: {reply}")
        self._conns[index] = conn
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.ensure_future(self._watch())
        return conn

    async def _connection(self) -> _Connection:
        # Calls made in the same event-loop tick share the connection whose write is
        # already scheduled: one send (syscall) per tick instead of one per connection.
        # The rotation then only spreads consecutive ticks' batches.
        hot = self._hot
        if hot is not None and hot.flush_scheduled and not hot.closed:
            return hot
        index = self._next
        self._next = (index + 1) % self._size
        conn = self._conns[index]
        if conn is not None and not conn.closed:
            self._hot = conn
            return conn
        # One connect per slot at a time; concurrent callers wait for it.
        waiting = self._connecting[index]
        if waiting is None or waiting.done():
            waiting = self._connecting[index] = asyncio.ensure_future(self._connect(index))
        return await asyncio.shield(waiting)

    async def _watch(self) -> None:
        tick = min(1.0, self._timeout / 4)
        limit = max(1, round(self._timeout / tick))
        while any(c is not None and not c.closed for c in self._conns):
            await asyncio.sleep(tick)
            for conn in self._conns:
                if conn is None or conn.closed or not conn.pending:
                    continue
                conn.oldest_age += 1
                if conn.oldest_age > limit:
                    conn.close()  # fails every call on it; callers retry once

    async def aclose(self) -> None:
        for conn in self._conns:
            if conn is not None:
                conn.close()
        self._conns = [None] * self._size
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog

    # Calls -----------------------------------------------------------------------------
    def call(self, script: Any, keys: list[str], args: list[Any]) -> Awaitable[Any]:
        """One script call. Not a coroutine itself: it hands back redis-py's (or the direct
        path's) awaitable, because every coroutine frame between a task and its I/O is
        walked again each time the task resumes."""
        if not self._direct:
            return script(keys=keys, args=args)  # type: ignore[no-any-return]
        return self._call_one(script, keys, args)

    async def _call_one(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        return (await self.call_many([(script, keys, args)]))[0]

    async def call_many(self, calls: list[Call]) -> list[Any]:
        """Run the scripts in order in one round trip; raise the first error reply."""
        if not self._direct:
            return await self._call_many_redis_py(calls)
        packed = b"".join(
            encode_command(["EVALSHA", script.sha, len(keys), *keys, *args])
            for script, keys, args in calls
        )
        try:
            conn = await self._connection()
            results = await conn.send(packed, len(calls))
        except (RedisConnectionError, OSError):
            conn = await self._connection()  # a fresh one: the old one is closed
            results = await conn.send(packed, len(calls))
        return await self._finish(calls, results)

    async def command(self, *args: Any) -> Any:
        """One plain command (a hot-path read such as a hold record's HGETALL) over the
        same connections, in the same write as the tick's scripts. The reply comes as
        Redis sends it (HGETALL: a flat list), not through redis-py's reply callbacks;
        without the direct path, redis-py's (which routes it on a cluster)."""
        if not self._direct:
            return await self.client.execute_command(*args)
        packed = encode_command(list(args))
        try:
            conn = await self._connection()
            [result] = await conn.send(packed, 1)
        except (RedisConnectionError, OSError):
            conn = await self._connection()  # a fresh one: the old one is closed
            [result] = await conn.send(packed, 1)
        if isinstance(result, ResponseError) and str(result).startswith("LOADING"):
            raise BusyLoadingError(str(result))  # as in _finish: unavailable, not a bug
        if isinstance(result, Exception):
            raise result
        return result

    async def _finish(self, calls: list[Call], results: list[Any]) -> list[Any]:
        for i, result in enumerate(results):
            if _is_noscript(result):
                results[i] = await self._reload_and_run(calls[i])
            elif isinstance(result, ResponseError) and str(result).startswith("LOADING"):
                # Redis is loading its data after a restart: unavailable, not a bug (503).
                raise BusyLoadingError(str(result))
            elif isinstance(result, Exception):
                raise result
        return results

    async def _reload_and_run(self, call: Call) -> Any:
        """Load the script and run it again. Another flush (a second failover, an
        operator's SCRIPT FLUSH) may land in between, so this is tried a few times."""
        script, keys, args = call
        for attempt in range(3):
            script.sha = await self.client.script_load(script.script)
            try:
                return await self.client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_many_redis_py(self, calls: list[Call]) -> list[Any]:
        # redis-py's cluster pipelines refuse EVALSHA, and calls in different hash slots
        # go to different nodes anyway: run them one after another, in order.
        return [await script(keys=keys, args=args) for script, keys, args in calls]


def _is_noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError) or (
        isinstance(result, ResponseError) and str(result).startswith("NOSCRIPT")
    )
