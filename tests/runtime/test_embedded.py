"""The embedded servers: they start, answer, stop cleanly, keep their data, and die with
their parent; plus the isolation the shared fixtures promise."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

import reservation
from reservation.runtime import procutil
from reservation.runtime.embedded import (
    VALKEY_GLIBC_TUNABLES,
    EmbeddedServers,
    PostgresServer,
    RedisCluster,
    RedisServer,
    ServerStartError,
    valkey_env,
)
from reservation.runtime.pginstall import find_install
from reservation.runtime.ports import CLUSTER_BUS_OFFSET, free_port, port_is_free
from reservation.settings import Settings

AS_ROOT = os.geteuid() == 0


def test_valkey_runs_with_the_malloc_tuning_unless_the_operator_set_their_own(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path, appendonly=False)
    with server:
        server.start()
        assert server.pid is not None
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        assert f"GLIBC_TUNABLES={VALKEY_GLIBC_TUNABLES}".encode() in environ
    assert valkey_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) == {
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"
    }


async def _fetch_one(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _assert_gone(pid: int, children: list[int], port: int) -> None:
    assert procutil.wait_gone([pid, *children], timeout=10) == []
    assert port_is_free(port)


def test_free_port_is_free_low_and_outside_the_ephemeral_range() -> None:
    for _ in range(20):
        port = free_port()
        assert port <= 55_000 and port_is_free(port)
        bus = free_port(with_bus=True)
        assert port_is_free(bus + CLUSTER_BUS_OFFSET)


def test_a_taken_port_is_retried_unless_the_caller_chose_it(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "auto", appendonly=False)
    taken = server.port
    with socket.create_server(("127.0.0.1", taken)):
        with server:
            server.start()
            assert server.port != taken and server.is_running()
        with pytest.raises(ServerStartError, match="Address already in use"):
            RedisServer(tmp_path / "fixed", port=taken, appendonly=False).start()


async def test_postgres_keeps_data_across_stop_kill_and_immediate_stop(server_dir: Path) -> None:
    server = PostgresServer(server_dir, fsync=False)
    server.start()
    try:
        # Synchronous commit for this row: the server runs with it off, and a SIGKILL
        # below must not lose it.
        await _execute(
            server.url,
            "SET synchronous_commit = on; CREATE TABLE t (x int); INSERT INTO t VALUES (42)",
        )
        pid, children = server.pid, procutil.children_of(server.pid or 0)
        assert pid is not None and children  # checkpointer, walwriter, ...
        server.stop()
        assert not server.is_running()
        _assert_gone(pid, children, server.port)

        assert server.pgdata == server_dir / "pgdata"
        initdb_log = (server_dir / "initdb.log").read_bytes()
        server.start()
        assert (server_dir / "initdb.log").read_bytes() == initdb_log  # not re-initdb'd
        assert await _fetch_one(server.url, "SELECT x FROM t") == 42

        server.kill()  # stale postmaster.pid and crash recovery on the next start
        server.start()
        assert await _fetch_one(server.url, "SELECT x FROM t") == 42

        server.stop_immediate()
        server.restart()
        assert await _fetch_one(server.url, "SELECT x FROM t") == 42
    finally:
        server.stop()


@pytest.mark.skipif(not AS_ROOT, reason="only root switches to nobody")
def test_postgres_runs_as_nobody_when_root(pg_server: PostgresServer) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    assert pg_server.pid is not None
    assert procutil.process_uid(pg_server.pid) == nobody
    assert all(procutil.process_uid(p) == nobody for p in procutil.children_of(pg_server.pid))
    assert pg_server.pgdata.stat().st_uid == nobody
    # pytest's own temp folder is private to root: the data moved to a fallback folder.
    if not procutil.can_enter_as(pg_server.run_as, pg_server.data_dir):
        assert pg_server.pgdata.parent == Path(tempfile.gettempdir())


async def test_postgres_runs_from_copied_binaries(server_dir: Path) -> None:
    with PostgresServer(server_dir, fsync=False, copy_binaries=True) as server:
        server.start()
        assert server.install.root != find_install().root
        assert server.install.root.is_relative_to(tempfile.gettempdir())
        assert await _fetch_one(server.url, "SELECT current_database()") == "fairseat"


async def test_redis_keeps_appendonly_data_across_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    try:
        async with aioredis.Redis.from_url(server.url, decode_responses=True) as client:
            await client.set("k", "v")
        pid = server.pid
        assert pid is not None
        server.stop()
        _assert_gone(pid, [], server.port)

        server.start()
        server.kill()
        server.restart()
        async with aioredis.Redis.from_url(server.url, decode_responses=True) as client:
            assert await client.get("k") == "v"
    finally:
        server.stop()


_CHILD = """
import sys, time
from pathlib import Path
from reservation.runtime.embedded import start_postgres, start_redis

kind, folder = sys.argv[1], Path(sys.argv[2])
if kind == "postgres":
    server = start_postgres(folder, fsync=False)
else:
    server = start_redis(folder, appendonly=False)
print(server.pid, server.port, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_server_dies_when_its_parent_is_killed(kind: str, server_dir: Path) -> None:
    repo = Path(reservation.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with (server_dir / "parent.log").open("wb") as parent_log:
        parent = subprocess.Popen(
            [sys.executable, "-c", _CHILD, kind, str(server_dir / "data")],
            stdout=subprocess.PIPE,
            stderr=parent_log,
            env=env,
        )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().decode()
        assert line, (server_dir / "parent.log").read_text()
        pid, port = map(int, line.split())
        children = procutil.children_of(pid)
        if kind == "postgres" and AS_ROOT:  # the death signal survived the uid switch
            assert procutil.process_uid(pid) == pwd.getpwnam("nobody").pw_uid
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    _assert_gone(pid, children, port)


@pytest.mark.cluster
async def test_cluster_is_ok_on_every_node_and_serves_keys(
    redis_cluster: RedisCluster, redis_cluster_client: AsyncRedisCluster, key_prefix: str
) -> None:
    assert all(redis_cluster.cluster_info(i)["cluster_state"] == "ok" for i in range(3))
    keys = [f"{key_prefix}:{{s{shard:03d}}}:k" for shard in range(12)]
    for key in keys:
        await redis_cluster_client.set(key, key)
    assert [await redis_cluster_client.get(k) for k in keys] == keys
    owners = [redis_cluster_client.get_node_from_key(k) for k in keys]
    assert (
        len({node.port for node in owners if node is not None}) > 1
    )  # the keys really are spread over the masters


@pytest.mark.cluster
async def test_cluster_heals_after_a_node_is_killed_and_restarted(
    redis_cluster: RedisCluster, redis_cluster_client: AsyncRedisCluster, key_prefix: str
) -> None:
    redis_cluster.kill_node(1)
    redis_cluster.restart_node(1)
    assert all(redis_cluster.cluster_info(i)["cluster_state"] == "ok" for i in range(3))
    await redis_cluster_client.set(f"{key_prefix}:{{s001}}:k", "v")
    assert await redis_cluster_client.get(f"{key_prefix}:{{s001}}:k") == "v"


async def test_embedded_servers_keep_data_across_runs(server_dir: Path) -> None:
    with EmbeddedServers(server_dir, fsync=False) as servers:
        await _execute(servers.database_url, "CREATE TABLE t AS SELECT 7 AS x")
        async with aioredis.Redis.from_url(servers.redis_url) as client:
            await client.set("k", "7")
        pids = [servers.postgres.pid, servers.redis.pid]
    assert procutil.wait_gone([p for p in pids if p is not None], timeout=10) == []

    with EmbeddedServers(server_dir, fsync=False) as servers:
        assert await _fetch_one(servers.database_url, "SELECT x FROM t") == 7
        async with aioredis.Redis.from_url(servers.redis_url) as client:
            assert await client.get("k") == b"7"


# The shared fixtures: each of the twin runs below would fail if the other's leftovers
# were visible to it.


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_its_own_migrated_database(database_url: str, run: int) -> None:
    assert await _fetch_one(database_url, "SELECT count(*) FROM schema_migrations")
    await _execute(database_url, "CREATE TABLE scratch (x int)")


@pytest.mark.parametrize("run", [1, 2])
async def test_key_prefix_is_unique_and_cleaned_up(
    redis_client: aioredis.Redis, key_prefix: str, run: int
) -> None:
    assert [k async for k in redis_client.scan_iter(match="*:probe")] == []
    await redis_client.set(f"{key_prefix}:probe", run)


def test_settings_point_at_the_test_servers(
    settings: Settings, database_url: str, redis_url: str, key_prefix: str
) -> None:
    assert (settings.database_url, settings.redis_url) == (database_url, redis_url)
    assert settings.key_prefix == key_prefix
    assert not settings.run_background_workers and not settings.seed_demo_data
    ports = {urlsplit(database_url).port, urlsplit(redis_url).port}
    assert not ports & {5432, 6379}
