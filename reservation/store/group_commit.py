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
"""Writes rows on a connection, inside the transaction the group commit opened (or
atomically by itself, with ``transaction=False``)."""


class GroupCommit(Generic[Row]):
    def __init__(
        self,
        pool: Any,
        write: WriteBatch[Row],
        *,
        max_batch: int = 500,
        retry_alone: Callable[[BaseException], bool] = lambda exc: False,
        transaction: bool = True,
    ) -> None:
        self._pool = pool
        self._write = write
        self._max = max_batch
        # For errors about the data (not the database being down): one bad row must not
        # fail the others of its batch, so each is then tried in a transaction of its own.
        self._retry_alone = retry_alone
        # False: ``write`` is atomic by itself (one statement, or one asyncpg
        # ``executemany``, which is all-or-nothing since asyncpg 0.22) and runs without
        # BEGIN/COMMIT: two round trips fewer per batch, the commit is the same.
        self._transaction = transaction
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
            try:
                # One connection for back-to-back batches: a pool checkout costs a reset
                # round trip on release, paid once per run of batches, not per batch.
                async with self._pool.acquire() as conn:
                    while self._queue:
                        if not await self._flush_batch(conn):
                            break  # the connection may be broken: take a fresh one
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # No connection (Postgres down): the next batch hears why, as before.
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                _settle(batch, exc)

    async def _flush_batch(self, conn: Any) -> bool:
        """Commit the next batch and settle its submitters; False if it failed."""
        batch, self._queue = self._queue[: self._max], self._queue[self._max :]
        try:
            await self._commit(conn, [row for row, _ in batch])
        except asyncio.CancelledError as exc:
            _settle(batch, exc)
            raise
        except Exception as exc:
            if len(batch) > 1 and self._retry_alone(exc):
                for item in batch:
                    await self._commit_alone(conn, item)
                return True
            _settle(batch, exc)
            return False
        _settle(batch, None)
        return True

    async def _commit(self, conn: Any, rows: list[Row]) -> None:
        if not self._transaction:
            await self._write(conn, rows)
            return
        async with conn.transaction():
            await self._write(conn, rows)

    async def _commit_alone(self, conn: Any, item: tuple[Row, asyncio.Future[None]]) -> None:
        try:
            await self._commit(conn, [item[0]])
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
