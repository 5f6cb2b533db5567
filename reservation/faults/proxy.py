"""A small asyncio TCP proxy that sits between the service and Redis and misbehaves.

Modes (switchable while connections are open):

- ``pass``: forward both ways untouched;
- ``drop``: each chunk a client sends is forwarded to Redis, and with probability
  ``drop_rate`` its connection is doomed: the next reply bytes from Redis are discarded
  and both sides are closed. Redis has executed the request but the client never hears:
  the "lost reply" a client retry must survive;
- ``delay``: every request chunk waits ``delay_s`` before it is forwarded;
- ``blackhole``: requests are forwarded, replies are swallowed (a Redis that stops
  answering while keeping its connections open).

The RNG is seedable so a failing run can be replayed; counters say what happened. A
"request" here is one chunk read from the client (a pipelining client may pack several
commands into one chunk; all of them lose their replies together, as on a real network).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

Mode = Literal["pass", "drop", "delay", "blackhole"]

_CHUNK = 65536


@dataclass
class ProxyCounters:
    connections: int = 0
    requests: int = 0  # chunks forwarded to Redis
    replies: int = 0  # chunks forwarded back to clients
    replies_dropped: int = 0  # connections closed after Redis answered a doomed request
    replies_swallowed: int = 0  # chunks discarded in blackhole mode


class _Link:
    """One client connection and its upstream twin."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.doomed = False

    def close(self) -> None:
        # abort(): no graceful FIN after buffered data, the client must not get the reply.
        self.client.transport.abort()
        self.upstream.transport.abort()


class FaultProxy:
    """``async with FaultProxy("127.0.0.1", redis_port, seed=1) as proxy:`` then point the
    client at ``proxy.url``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        mode: Mode = "pass",
        drop_rate: float = 0.0,
        delay_s: float = 0.0,
        seed: int | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self._listen_port = listen_port
        self.mode: Mode = mode
        self.drop_rate = drop_rate
        self.delay_s = delay_s
        self.rng = random.Random(seed)
        self.counters = ProxyCounters()
        self._drop_next = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # Lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.listen_host, self._listen_port)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"redis://{self.listen_host}:{self.port}"

    def set_mode(
        self, mode: Mode, *, drop_rate: float | None = None, delay_s: float | None = None
    ) -> None:
        self.mode = mode
        if drop_rate is not None:
            self.drop_rate = drop_rate
        if delay_s is not None:
            self.delay_s = delay_s

    def drop_next(self, count: int = 1) -> None:
        """Doom the next ``count`` requests whatever the mode (deterministic tests)."""
        self._drop_next += count

    def sever_all(self) -> None:
        """Close every open connection now (a network blip)."""
        for link in list(self._links):
            link.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.sever_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Forwarding ------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        tasks = [
            asyncio.ensure_future(self._requests(link, reader)),
            asyncio.ensure_future(self._replies(link, up_reader)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks.difference_update(tasks)
            self._links.discard(link)

    async def _requests(self, link: _Link, reader: asyncio.StreamReader) -> None:
        while True:
            chunk = await reader.read(_CHUNK)
            if not chunk:
                return
            if self.mode == "delay" and self.delay_s > 0:
                await asyncio.sleep(self.delay_s)
            if self._drop_next > 0:
                self._drop_next -= 1
                link.doomed = True
            elif self.mode == "drop" and self.rng.random() < self.drop_rate:
                # Doomed before the write, so whatever Redis answers next is discarded;
                # the request itself still reaches Redis (and is executed).
                link.doomed = True
            self.counters.requests += 1
            link.upstream.write(chunk)
            await link.upstream.drain()

    async def _replies(self, link: _Link, reader: asyncio.StreamReader) -> None:
        while True:
            chunk = await reader.read(_CHUNK)
            if not chunk:
                return
            if link.doomed:
                self.counters.replies_dropped += 1
                return  # _handle closes both sides
            if self.mode == "blackhole":
                self.counters.replies_swallowed += 1
                continue
            self.counters.replies += 1
            link.client.write(chunk)
            await link.client.drain()
