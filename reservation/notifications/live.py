"""Live pages across processes: one LISTEN connection per process wakes its open streams.

Every HTTP worker process (``fairseat serve --workers N``) may hold the page of any
citizen, and a notification may be recorded by any process (the persister, a workflow,
the notifier's reminders). A trigger sends ``pg_notify('fairseat_notifications',
'<id> <account>')`` at COMMIT; each process listens with ONE dedicated connection and
sets the wake-up event of that account's streams in this process. The event carries no
data: a woken stream reads what it has not sent yet by id (``id > last sent``), so a
lost or coalesced NOTIFY, or a listener reconnect, can delay a message but never lose it
(a reconnect wakes every stream, and every heartbeat catches up as well).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from reservation.errors import Overloaded

log = logging.getLogger("fairseat.live")

CHANNEL = "fairseat_notifications"


class TooManyStreams(Overloaded):
    code = "too_many_streams"
    default_message = "Too many live pages are open on this server; retry shortly."
    retry_after_s = 5


class LiveHub:
    """Per-process registry of open streams, woken by the LISTEN connection."""

    def __init__(self, max_streams: int = 1000) -> None:
        self.max_streams = max_streams
        self._streams = 0
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self.closed = False

    @property
    def open_streams(self) -> int:
        return self._streams

    async def ensure_listening(self, dsn: str) -> None:
        """Open the listener if it is not open (first stream, or after a lost connection)."""
        if self._conn is not None and not self._conn.is_closed():
            return
        async with self._lock:
            if self.closed or (self._conn is not None and not self._conn.is_closed()):
                return
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
            except BaseException:
                await conn.close()
                raise
            conn.add_termination_listener(self._on_lost)
            self._conn = conn
        # Whatever was committed while nobody listened: every stream reads by id.
        self._wake_all()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        _, _, account = str(payload).partition(" ")
        for event in self._waiters.get(account, ()):
            event.set()

    def _on_lost(self, _conn: Any) -> None:
        log.warning("live listener connection lost; streams reconnect it")
        self._conn = None
        self._wake_all()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, account_id: str, dsn: str) -> AsyncIterator[asyncio.Event]:
        """A wake-up event for one stream of ``account_id``; TooManyStreams beyond the cap."""
        if self.closed or self._streams >= self.max_streams:
            raise TooManyStreams()
        self._streams += 1  # counted before any await: the cap holds under a burst
        try:
            await self.ensure_listening(dsn)
            event = asyncio.Event()
            self._waiters.setdefault(account_id, set()).add(event)
            try:
                yield event
            finally:
                events = self._waiters.get(account_id)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[account_id]
        finally:
            self._streams -= 1

    async def close(self) -> None:
        """Server shutdown: every stream ends (clients reconnect elsewhere with
        Last-Event-ID), then the listener goes."""
        self.closed = True
        self._wake_all()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
