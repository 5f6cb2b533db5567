"""``fairseat serve``: the process supervisor.

The parent (no event loop of its own while children run) starts the embedded servers when
no URLs are configured, prepares the database, then forks N HTTP workers that share one
port through SO_REUSEPORT and one background process (persister, expiry sweeper, notifier,
waitlist filler). It stops everything it started on Ctrl-C or SIGTERM; children and servers
also die with it if it is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reservation.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("fairseat.serve")

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to signal this process when its parent dies (Linux only).

    First ``sig`` gets its default action back: a forked worker inherits the supervisor's
    handler, which only sets a flag, so a parent that died while the worker was still
    starting (before it installs its own handler) left it running, an orphan listening on
    the port. ``parent``: the pid that forked us; if it is gone already (it died between
    the fork and the prctl, so no signal will come), exit now."""
    signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def dev_secrets(settings: Settings) -> Settings:
    """Fill unset secrets from ``<data_dir>/secrets.json`` (created once, mode 0600).

    A development convenience for the embedded default; production sets them explicitly.
    """
    if settings.secret_key and settings.id_hmac_key and settings.operator_key:
        return settings
    path = settings.data_dir / "secrets.json"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fresh = {
            "secret_key": secrets.token_urlsafe(32),
            "id_hmac_key": secrets.token_urlsafe(32),
            "operator_key": "op_" + secrets.token_urlsafe(24),
        }
        # Written whole, then linked into place: a process starting at the same moment
        # sees either no file or a complete one, and the first link wins.
        tmp = path.with_name(f".secrets.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(fresh, f)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
    stored = json.loads(path.read_text())
    return settings.replace(
        secret_key=settings.secret_key or stored["secret_key"],
        id_hmac_key=settings.id_hmac_key or stored["id_hmac_key"],
        operator_key=settings.operator_key or stored["operator_key"],
    )


@contextlib.contextmanager
def backends(settings: Settings, *, fsync: bool = True) -> Iterator[Settings]:
    """Yield settings with working URLs: the configured servers, or embedded ones started
    now (from the main thread, before any event loop) and stopped on exit.

    While embedded servers run, ``<data_dir>/runtime.json`` names their URLs and pids, so
    operators (and tests) can reach them.
    """
    if settings.database_url and settings.redis_url:
        yield settings
        return
    runtime_file = settings.data_dir / "runtime.json"
    running = _running_embedded(runtime_file)
    if running is not None:
        # ``fairseat serve`` already runs on this folder: share its servers (starting a
        # second Postgres on the same data would fail).
        yield settings.replace(
            database_url=settings.database_url or running["database_url"],
            redis_url=settings.redis_url or running["redis_url"],
        )
        return
    from reservation.runtime.embedded import EmbeddedServers

    with EmbeddedServers(settings.data_dir.resolve(), fsync=fsync) as servers:
        ready = settings.replace(
            database_url=settings.database_url or servers.database_url,
            redis_url=settings.redis_url or servers.redis_url,
        )
        runtime_file.write_text(
            json.dumps(
                {
                    "database_url": ready.database_url,
                    "redis_url": ready.redis_url,
                    "postgres_pid": servers.postgres.pid,
                    "redis_pid": servers.redis.pid,
                    "supervisor_pid": os.getpid(),
                }
            )
        )
        try:
            yield ready
        finally:
            runtime_file.unlink(missing_ok=True)


def _running_embedded(runtime_file: Path) -> dict[str, Any] | None:
    """The URLs of embedded servers a live supervisor started on this data folder."""
    try:
        info: dict[str, Any] = json.loads(runtime_file.read_text())
        os.kill(int(info["supervisor_pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return info


async def prepare(settings: Settings) -> dict[str, str] | None:
    """Migrate, and seed demo data on first start. Returns demo credentials if seeded."""
    from reservation.seed import seed_demo
    from reservation.services import open_services
    from reservation.store.migrate import apply_migrations
    from reservation.trains_seed import seed_trains
    from reservation.workflows.rebuild_inventory import ensure_inventory_ready

    assert settings.database_url is not None
    await apply_migrations(settings.database_url)
    async with open_services(settings, pg_pool_size=2) as services:
        # First start builds the live inventory (epoch 1); after a Redis restart or data
        # loss it is rebuilt from Postgres before any sale (FAIRSEAT_REBUILD_ON_START).
        await ensure_inventory_ready(services)
        creds = await seed_demo(services) if settings.seed_demo_data else None
        if settings.seed_demo_data:
            # After seed_demo, which seeds only while no provider exists at all.
            await seed_trains(services)
    if creds is None:
        return None
    return {
        "hospital_staff_key (provider pumch)": creds.hospital_staff_key,
        "vaccine_staff_key (provider bj-dongcheng-cdc)": creds.vaccine_staff_key,
    }


def _install_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def http_runner(app: web.Application) -> web.AppRunner:
    """The runner that serves ``app`` in an HTTP worker: requests aiohttp's parser refuses
    (an over-long header, raw non-ASCII bytes in the URL) get the JSON error too."""
    from reservation.api.http_server import JsonErrorAppRunner

    return JsonErrorAppRunner(app, access_log=None, handle_signals=False)


def run_http_worker(settings: Settings, index: int, parent: int | None = None) -> None:
    """One HTTP worker process: its own event loop, sharing the port via SO_REUSEPORT."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    _install_uvloop()
    from aiohttp import web

    from reservation.app import create_app

    async def main() -> None:
        app = create_app(settings)
        runner = http_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=True, backlog=4096)
        await site.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


async def run_background(
    settings: Settings,
    index: int = 0,
    total: int = 1,
    stop: asyncio.Event | None = None,
    which: tuple[str, ...] = ("persister", "sweeper", "notifier", "waitlist", "sampler"),
    metrics_port: int | None = None,
) -> None:
    """Persister and sweeper for the shards ``shard % total == index``, and the notifier
    (not sharded: notifiers share its queue through leases, so any number may run).

    ``metrics_port``: serve this process's metrics on ``/metrics`` of that port (for a
    worker run alone; inside ``fairseat serve`` the HTTP workers report them instead).
    """
    from reservation.services import open_services
    from reservation.workers.persister import Persister, owned_shards
    from reservation.workers.sweeper import Sweeper
    from reservation.workflows.rebuild_inventory import install_epoch_guard

    stop = stop or asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        # Under ``fairseat serve`` a terminal's Ctrl-C reaches the whole process group;
        # the supervisor decides when children stop, so they ignore SIGINT there.
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            loop.add_signal_handler(signal.SIGINT, stop.set)
    async with open_services(settings, pg_pool_size=4) as services:
        # The sweeper must not expire holds while sales are closed after a data loss.
        install_epoch_guard(services)
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=settings.host, registry=services.metrics.registry)
        shards = owned_shards(settings.shard_count, index, total)
        tasks = []
        if "persister" in which:
            persister = Persister(
                services,
                # Stable: a restarted persister finds its own pending entries at once
                # instead of waiting for XAUTOCLAIM to call them abandoned.
                consumer=f"persister-{index}-of-{total}",
                shards=shards,
                batch_size=settings.persister_batch_size,
                dead_letter_after=settings.persister_dead_letter_after,
                claim_idle_ms=settings.persister_claim_idle_ms,
            )
            tasks.append(asyncio.create_task(persister.run(stop)))
        if "sweeper" in which:
            sweeper = Sweeper(services, shards)
            tasks.append(
                asyncio.create_task(sweeper.run(stop, settings.sweeper_interval_ms / 1000))
            )
        # --- notifications (issue 6): senders, reminders, delivery once per channel
        if "notifier" in which:
            from reservation.workers.notifier import Notifier, senders_from_settings

            notifier = Notifier(
                services,
                senders_from_settings(settings),
                batch_size=settings.notify_batch_size,
            )
            tasks.append(asyncio.create_task(notifier.run(stop)))
        # --- waitlist (issue 5): freed places to waiting orders, then back on sale. The
        # line is global: every filler covers every shard, one pass at a time (a Postgres
        # advisory lock), so several background processes are harmless.
        if "waitlist" in which:
            from reservation.workers.waitlist_filler import WaitlistFiller

            filler = WaitlistFiller(services, list(range(settings.shard_count)))
            tasks.append(
                asyncio.create_task(filler.run(stop, settings.waitlist_filler_interval_ms / 1000))
            )
        # --- live metrics (issue 7): queue, waitlist and watched-stock gauges, read from
        # Redis/Postgres by one process only (the gauges' multiprocess mode assumes one
        # writer); the first of several background processes runs it.
        if "sampler" in which and index == 0:
            from reservation.workers.stock_sampler import StockSampler

            sampler = StockSampler(services)
            tasks.append(asyncio.create_task(sampler.run(stop, settings.stock_sample_ms / 1000)))
        await asyncio.gather(*tasks)


def run_background_process(settings: Settings, parent: int | None = None) -> None:
    die_with_parent(parent)
    if settings.background_nice:
        os.nice(min(settings.background_nice, 19))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _install_uvloop()
    asyncio.run(run_background(settings))


def _fresh_metrics_dir(settings: Settings) -> Path:
    """An empty folder for prometheus_client's multiprocess mode.

    The library picks its mode from PROMETHEUS_MULTIPROC_DIR when it is first imported,
    so it is set here, in the supervisor, before anything imports it; the forked workers
    inherit it.
    """
    path = (settings.metrics_dir or settings.data_dir / "metrics").resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    from reservation.metrics import multiprocess_values_with_cached_pid

    multiprocess_values_with_cached_pid()
    return path


@dataclass
class Child:
    name: str
    process: Any


def wait_ready(url: str, timeout: float, poll_s: float = 0.2) -> bool:
    """Poll ``<url>/readyz`` until it answers 200 (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(poll_s)
    return False


def serve(settings: Settings, *, out: Callable[[str], None] = print) -> int:
    """Run until SIGINT/SIGTERM. Returns the process exit code."""
    stopping = {"flag": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    settings = dev_secrets(settings)
    if settings.workers > 1 or settings.run_background_workers:
        settings = settings.replace(metrics_dir=_fresh_metrics_dir(settings))
    embedded = not (settings.database_url and settings.redis_url)
    if embedded:
        out(f"Starting embedded Postgres and Redis-compatible servers in {settings.data_dir}/")
    with backends(settings) as ready:
        if embedded:
            out(f"  Postgres: {ready.database_url}\n  Redis:    {ready.redis_url}")
        creds = asyncio.run(prepare(ready))
        ctx = multiprocessing.get_context("fork")
        me = os.getpid()
        children = [
            Child(
                f"http-{i}",
                ctx.Process(target=run_http_worker, args=(ready, i, me), name=f"fairseat-http-{i}"),
            )
            for i in range(ready.workers)
        ]
        if ready.run_background_workers:
            children.append(
                Child(
                    "background",
                    ctx.Process(
                        target=run_background_process,
                        args=(ready, me),
                        name="fairseat-background",
                    ),
                )
            )
        for child in children:
            child.process.start()
        url = f"http://{ready.host}:{ready.port}"
        if creds:
            (ready.data_dir / "demo-credentials.json").write_text(json.dumps(creds, indent=2))
            out("Demo data seeded. Staff keys (also in demo-credentials.json):")
            for name, key in creds.items():
                out(f"  {name}: {key}")
        if not wait_ready(url, 30):
            out("fairseat did not become ready within 30 s; stopping")
            stopping["flag"] = True
        else:
            out(f"Operator key: see {ready.data_dir}/secrets.json. Stop with Ctrl-C.")
            # Last, so that a reader waiting for this line finds everything else in place.
            out(f"fairseat is ready: {url}  (API description: {url}/openapi.json)")
        sys.stdout.flush()
        exit_code = 0
        while not stopping["flag"]:
            time.sleep(0.2)
            dead = [c for c in children if not c.process.is_alive()]
            if dead:
                out(f"worker {dead[0].name} exited (code {dead[0].process.exitcode}); stopping")
                exit_code = 1
                break
        for child in children:
            if child.process.is_alive():
                child.process.terminate()
        for child in children:
            child.process.join(10)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
        out("fairseat stopped")
    return exit_code
