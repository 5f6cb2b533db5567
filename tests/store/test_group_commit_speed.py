"""Group commit, the cheaper way (issue 7): back-to-back batches on one connection, and
writers that are atomic by themselves without BEGIN/COMMIT. Real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from reservation.store.db import is_transient
from reservation.store.group_commit import GroupCommit
from tests.store.test_group_commit import Recorder, count, pool

__all__ = ["pool"]  # the fixture, shared with the group commit's own tests


class Backends(Recorder):
    """Records which server process wrote each batch, and whether it ran in a block."""

    def __init__(self) -> None:
        super().__init__()
        self.pids: list[int] = []
        self.in_block: list[bool] = []

    async def write(self, conn: Any, rows: Sequence[int]) -> None:
        self.pids.append(int(await conn.fetchval("SELECT pg_backend_pid()")))
        self.in_block.append(conn.is_in_transaction())
        await super().write(conn, rows)


async def test_back_to_back_batches_share_one_connection(pool: Any) -> None:
    rec = Backends()
    commits: GroupCommit[int] = GroupCommit(pool, rec.write, max_batch=30)
    await asyncio.gather(*(commits.submit(n) for n in range(100)))
    assert rec.batches == [30, 30, 30, 10]
    assert len(set(rec.pids)) == 1
    assert rec.in_block == [True] * 4
    assert await count(pool) == 100


async def test_without_a_transaction_a_batch_is_still_all_or_nothing(pool: Any) -> None:
    rec = Backends()
    commits: GroupCommit[int] = GroupCommit(pool, rec.write, transaction=False)
    results = await asyncio.gather(*(commits.submit(n) for n in (1, -1)), return_exceptions=True)
    assert all(isinstance(r, asyncpg.CheckViolationError) for r in results)
    assert rec.in_block == [False]
    assert await count(pool) == 0  # executemany rolled the good row back too


async def test_without_a_transaction_a_bad_row_still_fails_alone(pool: Any) -> None:
    rec = Backends()
    commits: GroupCommit[int] = GroupCommit(
        pool, rec.write, retry_alone=lambda exc: not is_transient(exc), transaction=False
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
