"""Group commit: many concurrent requests' rows written in one Postgres transaction.

Why: a confirm must be committed before the citizen hears "confirmed", and at the rush
thousands arrive per second. One transaction per confirm pays a round trip and an fsync
each; here every row submitted while a write is in flight (or within the same event-loop
tick) joins the next transaction, and each submitter resumes only after *its*
transaction committed. Errors reach every submitter of the failed batch, unchanged, so
callers still see transient errors (503, retry) exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Row = TypeVar("Row")

WriteBatch = Callable[[Any, Sequence[Row]], Awaitable[None]]
"""Writes rows on a connection, inside the transaction the writer opened."""


class GroupCommit(Generic[Row]):
    def __init__(
        self,
        pool: Any,
        write: WriteBatch[Row],
        *,
        max_batch: int = 500,
        retry_alone: Callable[[BaseException], bool] = lambda exc: False,
    ) -> None:
        self._pool = pool
        self._write = write
        self._max = max_batch
        # For errors about the data (not the database being down): one bad row must not
        # fail the others of its batch, so each is then tried in a transaction of its own.
        self._retry_alone = retry_alone
        self._queue: list[tuple[Row, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, row: Row) -> None:
        """Return once ``row`` is committed (or raise what the transaction raised)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_all())
        await asyncio.shield(future)

    async def _flush_all(self) -> None:
        # Yield once so that every request handled in this tick joins the first batch.
        await asyncio.sleep(0)
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            try:
                await self._commit([row for row, _ in batch])
            except asyncio.CancelledError as exc:
                _settle(batch, exc)
                raise
            except Exception as exc:
                if len(batch) > 1 and self._retry_alone(exc):
                    for item in batch:
                        await self._commit_alone(item)
                else:
                    _settle(batch, exc)
                continue
            _settle(batch, None)

    async def _commit(self, rows: list[Row]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._write(conn, rows)

    async def _commit_alone(self, item: tuple[Row, asyncio.Future[None]]) -> None:
        try:
            await self._commit([item[0]])
        except Exception as exc:
            _settle([item], exc)
        else:
            _settle([item], None)

    async def aclose(self) -> None:
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)


def _settle(batch: Sequence[tuple[Any, asyncio.Future[None]]], exc: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)
