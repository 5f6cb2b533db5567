"""Group commit on real Postgres: one transaction for concurrent submitters, each resumed
after its own commit; a bad row fails alone; a down database fails everyone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from reservation.store.db import create_pool, is_transient
from reservation.store.group_commit import GroupCommit


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    pool = await create_pool(database_url, max_size=4)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE gc_rows (n integer PRIMARY KEY CHECK (n >= 0))")
    yield pool
    await pool.close()


class Recorder:
    def __init__(self) -> None:
        self.batches: list[int] = []

    async def write(self, conn: Any, rows: Sequence[int]) -> None:
        self.batches.append(len(rows))
        await conn.executemany("INSERT INTO gc_rows (n) VALUES ($1)", [(n,) for n in rows])


async def count(pool: Any) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM gc_rows"))


async def test_concurrent_rows_share_one_transaction(pool: Any) -> None:
    rec = Recorder()
    commits: GroupCommit[int] = GroupCommit(pool, rec.write)
    await asyncio.gather(*(commits.submit(n) for n in range(100)))
    assert rec.batches == [100]
    assert await count(pool) == 100


async def test_batches_are_bounded(pool: Any) -> None:
    rec = Recorder()
    commits: GroupCommit[int] = GroupCommit(pool, rec.write, max_batch=30)
    await asyncio.gather(*(commits.submit(n) for n in range(100)))
    assert rec.batches == [30, 30, 30, 10]


async def test_a_bad_row_fails_alone(pool: Any) -> None:
    rec = Recorder()
    commits: GroupCommit[int] = GroupCommit(
        pool, rec.write, retry_alone=lambda exc: not is_transient(exc)
    )
    results = await asyncio.gather(
        *(commits.submit(n) for n in (1, 2, -1, 3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [
        type(None),
        type(None),
        asyncpg.CheckViolationError,
        type(None),
    ]
    assert rec.batches == [4, 1, 1, 1, 1]
    assert await count(pool) == 3


async def test_without_retry_every_submitter_sees_the_error(pool: Any) -> None:
    rec = Recorder()
    commits: GroupCommit[int] = GroupCommit(pool, rec.write)
    results = await asyncio.gather(*(commits.submit(n) for n in (1, -1)), return_exceptions=True)
    assert all(isinstance(r, asyncpg.CheckViolationError) for r in results)
    assert await count(pool) == 0
