"""Session-wide real servers and per-test isolation on top of them.

One Postgres and one Valkey per test session, on random loopback ports (never 5432/6379),
started on first use and stopped at the end. Each test that asks for ``database_url`` gets
its own database cloned from a migrated template; each ``key_prefix`` is unique and its
keys are deleted afterwards. A 3-master Redis Cluster starts only if a test asks for it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from reservation.runtime.embedded import PostgresServer, RedisCluster, RedisServer
from reservation.runtime.procutil import throwaway_dir
from reservation.settings import Settings
from reservation.store.migrate import apply_migrations

# The ``api`` fixture (an app with a fake clock, providers and staff keys) for every folder.
pytest_plugins = ["tests.api_fixture"]

TEMPLATE_DATABASE = "fairseat_template"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path_factory.mktemp("postgres"), fsync=False)
    server.start()
    yield server
    # Logs stay in pytest's temp folder; the cluster itself (~45 MB, in a fallback folder
    # outside it when running as root, since pytest's folder is private) goes now.
    server.stop_and_delete_data()


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A fresh folder for a test's own embedded servers, deleted afterwards.

    Use it instead of ``tmp_path`` for Postgres: pytest's folders sit under a private
    (0700) root-owned folder that ``nobody`` cannot enter, so a root-run Postgres would
    keep its data in a fallback folder in /tmp that nothing deletes. This one is handed
    to the server user (a chown of a folder we just made; no permissions widened).
    """
    with throwaway_dir("fairseat-test-") as folder:
        yield folder


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"), masters=3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    return redis_cluster.url


@pytest.fixture(scope="session")
def _test_numbers() -> Iterator[int]:
    """Numbers for per-test database names and key prefixes, unique within the session."""
    return itertools.count(1)


@pytest.fixture(scope="session")
async def template_database(pg_server: PostgresServer) -> str:
    """``fairseat_template`` with every migration applied, built once per session."""
    admin = await asyncpg.connect(pg_server.admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DATABASE}")
        await apply_migrations(pg_server.url_for(TEMPLATE_DATABASE))
        # Cloning fails while anyone is connected to the template: forbid connections.
        await admin.execute(
            f"ALTER DATABASE {TEMPLATE_DATABASE} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        )
    finally:
        await admin.close()
    return TEMPLATE_DATABASE


@pytest.fixture
async def database_url(
    pg_server: PostgresServer, template_database: str, _test_numbers: Iterator[int]
) -> AsyncIterator[str]:
    """A fresh, migrated database for this test only, dropped afterwards."""
    name = f"t_{next(_test_numbers)}"
    admin = await asyncpg.connect(pg_server.admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    finally:
        await admin.close()
    yield pg_server.url_for(name)
    admin = await asyncpg.connect(pg_server.admin_url)
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


async def _unlink_matching(client: aioredis.Redis, pattern: str) -> None:
    keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
    # One UNLINK per key, pipelined: a cluster node refuses multi-key commands that span
    # hash slots, and one round trip is all a test's handful of keys needs anyway.
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.unlink(key)
        await pipe.execute()


@pytest.fixture
async def key_prefix(
    request: pytest.FixtureRequest, redis_url: str, _test_numbers: Iterator[int]
) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards so memory stays flat.

    Keys look like ``<prefix>:{sNNN}:...`` (see ``inventory.keys``). Cleans the cluster too
    when the test also used it.
    """
    prefix = f"t{next(_test_numbers)}"
    # Looked up now: fixtures may not be requested during teardown.
    cluster: RedisCluster | None = None
    if "redis_cluster" in request.fixturenames or on_cluster():
        cluster = request.getfixturevalue("redis_cluster")
    yield prefix
    pattern = f"{prefix}:*"
    async with aioredis.Redis.from_url(redis_url) as client:
        await _unlink_matching(client, pattern)
    if cluster is not None:
        for url in cluster.urls:
            async with aioredis.Redis.from_url(url) as node:
                await _unlink_matching(node, pattern)


@pytest.fixture
async def redis_client(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    """A client of the test's Redis: the single node, or the cluster with
    FAIRSEAT_TEST_REDIS=cluster (the two share the command API we use)."""
    if on_cluster():
        cluster = AsyncRedisCluster.from_url(
            request.getfixturevalue("redis_cluster_url"), decode_responses=True
        )
        try:
            yield cluster
        finally:
            await cluster.aclose()
        return
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_cluster_client(redis_cluster_url: str) -> AsyncIterator[AsyncRedisCluster]:
    client = AsyncRedisCluster.from_url(redis_cluster_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def on_cluster() -> bool:
    """FAIRSEAT_TEST_REDIS=cluster runs the suite's service code on the 3-master cluster."""
    return os.environ.get("FAIRSEAT_TEST_REDIS", "single") == "cluster"


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    database_url: str,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
) -> Settings:
    cluster = on_cluster()
    return Settings(
        database_url=database_url,
        redis_url=request.getfixturevalue("redis_cluster_url") if cluster else redis_url,
        redis_cluster=cluster,
        key_prefix=key_prefix,
        data_dir=tmp_path,
        secret_key="test-secret",
        id_hmac_key="test-hmac",
        operator_key="test-operator",
        seed_demo_data=False,
        run_background_workers=False,
        # --- waitlist (issue 5): freed places are back on sale at once unless an order
        # waits; tests/waitlist turns the handoff delay on.
        handoff_delay_min_ms=0,
        handoff_delay_max_ms=0,
        # --- rush (issue 7): tests publish and list at once; tests/api/test_listing_cache
        # turns the listings' cache on.
        listing_cache_ms=0,
    )
