"""A small in-process cache whose entries live a fixed number of seconds.

Used where a rush repeats one read many times a second in every process (train search and
余票, the public slot listings) and an answer a second or two old is as good as a fresh one.
``get_or_load`` also lets concurrent misses of one key share a single load, so an expired
entry at 1,000 requests/s costs one query, not a burst of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class TtlCache:
    """Entries live ``ttl_s`` seconds (0: nothing is kept, every read loads)."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._data: dict[Hashable, tuple[float, Any]] = {}
        self._loading: dict[Hashable, asyncio.Future[Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        hit = self._fresh(key)
        return hit[0] if hit is not None else None

    def _fresh(self, key: Hashable) -> tuple[Any] | None:
        """``(value,)`` while the entry lives (a value may be None), else None."""
        hit = self._data.get(key)
        if hit is None or hit[0] <= self._clock():
            return None
        return (hit[1],)

    def put(self, key: Hashable, value: Any) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._data) >= self.max_entries:
            self._data.clear()  # crude but bounded; entries are seconds old anyway
        self._data[key] = (self._clock() + self.ttl_s, value)

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, else ``load()``'s, kept for ``ttl_s``. Callers that miss
        while a load of the key runs wait for that load. A failed load is not kept: its
        waiters get its error, and the next call loads again."""
        if self.ttl_s <= 0:
            return await load()
        hit = self._fresh(key)
        if hit is not None:
            value: T = hit[0]
            return value
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            # Its error is read here too, so that one whose waiters all left is not
            # reported as "never retrieved".
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._loading[key] = pending
        # Shielded: one caller's cancellation (a client gone) must not cancel the others'.
        result: T = await asyncio.shield(pending)
        return result

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await load()
            self.put(key, value)
            return value
        finally:
            self._loading.pop(key, None)
