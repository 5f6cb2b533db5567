"""The epoch guard: is the live inventory in Redis the one Postgres last rebuilt?

Every shard carries a marker (``Keys.epoch(shard)``) holding the epoch number of the last
rebuild from Postgres. Postgres keeps the current epoch and whether sales are open. Each
inventory script that writes compares the marker with the epoch its caller expects (an
``ARGV``) and refuses with ``-12`` (``SalesClosed``) on any difference, inside the same
atomic call: a Redis that lost its keys (no marker), was restored from an older copy
(an older number, or "lost"), or is being rebuilt ("rebuilding") sells nothing.

The expected value is ``str(epoch)`` while Postgres says sales are open, else ``CLOSED``
(which no marker ever holds). This module caches it per process and reloads it at most
every ``refresh_s`` (and at once after a refusal, so a finished rebuild opens sales
without waiting). The loader is injected: it lives with the store (reservation layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

CLOSED = "closed"  # the expected value while sales are closed: matches no marker
REBUILDING = "rebuilding"  # marker value while a rebuild runs
LOST = "lost"  # marker value written when a Redis restart was detected


@dataclass(frozen=True, slots=True)
class EpochState:
    epoch: int
    open: bool
    reason: str = ""

    @property
    def expected(self) -> str:
        return str(self.epoch) if self.open and self.epoch > 0 else CLOSED


NEVER_BUILT = EpochState(0, False, "the inventory was never built from Postgres")


class EpochGuard:
    """One per process; safe to share between tasks."""

    def __init__(
        self,
        load: Callable[[], Awaitable[EpochState]],
        *,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._clock = clock
        self._state = NEVER_BUILT
        self._loaded_at = -float("inf")
        self._loading: asyncio.Future[EpochState] | None = None

    @property
    def state(self) -> EpochState:
        return self._state

    def set(self, state: EpochState) -> None:
        """The rebuild tells its own process at once."""
        self._state = state
        self._loaded_at = self._clock()

    def invalidate(self) -> None:
        """The next ``expected()`` reloads (e.g. after a Redis connection was lost)."""
        self._loaded_at = -float("inf")

    async def expected(self) -> str:
        if self._clock() - self._loaded_at >= self._refresh_s:
            # Postgres unreachable: keep the last known epoch for another period; the
            # markers in Redis still close sales at once if Redis itself lost data.
            with contextlib.suppress(Exception):
                await self.refresh()
        return self._state.expected

    async def refresh(self) -> EpochState:
        """Reload from the source of truth; concurrent callers share one load."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._load())
        try:
            state = await asyncio.shield(self._loading)
        except Exception:
            self._loaded_at = self._clock()
            raise
        self.set(state)
        return state
