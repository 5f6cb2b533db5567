"""``fairseat bench http``: the whole service over HTTP, measured in one run on one machine.

Starts (or reuses configured) Postgres and Redis through ``bench_backends``, runs
``fairseat serve --workers 2`` (with the background persister) as a subprocess on a free
port, and drives it with the lean generator (``loadtest.generator``):

1. the ceiling of a trivial route (``GET /healthz``) and the end-to-end hold rate
   (``POST /v1/bookings``: authentication, validation, metrics, the account gate and the
   slot script), both closed loop, interleaved, best round of each; their ratio;
2. an open loop at 80 % of the best hold rate: p50/p99 latency measured from each
   request's intended send time;
3. the confirmed-bookings rate: hold + confirm pairs, counting confirms answered 200,
   which the service sends only after the booking committed in Postgres;
4. the invariant checker once the persister has drained.

The last line: ``ratio=<v> p99_ms=<v> confirmed_per_s=<v>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from reservation.settings import Settings

PROVIDER = ("bench-hospital", "Bench hospital", "hospital")
RESOURCES = 256  # one slot each (10,000 places, the most a slot may have), many shards
CITIZENS = 60_000
BLOCK = 1_000_000  # operation numbers per run: every run books new (citizen, slot) pairs
# Runs of holds without payment leave them live: a citizen would meet the cap of live
# unpaid holds (3 by default) after a few runs and get 429s that say nothing about speed.
# The cap is raised, not removed: every hold still runs the account gate's script.
BENCH_MAX_LIVE_HOLDS = 1_000


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU time of a process (all its threads) so far; 0 if it is gone.
    ``reaped_children``: add that of its children it has waited for (the generator's
    forked processes)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def serve_children(pid: int, expected: int, timeout: float = 10.0) -> list[int]:
    """Child pids of the ``fairseat serve`` supervisor, in start order (HTTP workers
    first, the background process last)."""
    deadline = time.monotonic() + timeout
    kids: list[int] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            kids = sorted(
                int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            )
        if len(kids) >= expected:
            break
        time.sleep(0.1)
    return kids


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process, its children alive now and those it has reaped: Postgres'
    postmaster and its backends (which come and go with connections)."""
    with contextlib.suppress(OSError):
        kids = Path(f"/proc/{root}/task/{root}/children").read_text().split()
        return cpu_seconds(root, reaped_children=True) + sum(cpu_seconds(int(k)) for k in kids)
    return 0.0


@dataclass
class CpuMeter:
    """CPU time the service's processes spend per operation of a phase: unlike rates on a
    shared machine, this does not depend on what else runs (only on cache effects).
    ``trees``: name -> the root pid of a process tree counted whole (Postgres)."""

    pids: dict[str, list[int]]
    trees: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, float]:
        cpu = {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}
        cpu.update({name: tree_cpu_seconds(root) for name, root in self.trees.items()})
        # The load generator itself (this process and its reaped forks): shows when the
        # client, not the service, sets the pace.
        cpu["client"] = cpu_seconds(os.getpid(), reaped_children=True)
        return cpu

    def per_op_us(self, before: dict[str, float], ops: int) -> dict[str, float]:
        after = self.snapshot()
        return {k: (after[k] - before[k]) * 1e6 / max(ops, 1) for k in after}


def describe_cpu(per_op: dict[str, float]) -> str:
    return "CPU per operation: " + ", ".join(f"{name} {us:,.0f} µs" for name, us in per_op.items())


@dataclass(frozen=True)
class Figures:
    trivial_per_s: float
    hold_per_s: float
    p50_ms: float
    p99_ms: float
    confirmed_per_s: float
    invariants_ok: bool

    @property
    def ratio(self) -> float:
        return self.hold_per_s / self.trivial_per_s if self.trivial_per_s else 0.0

    def last_line(self) -> str:
        return (
            f"ratio={self.ratio:.3f} p99_ms={self.p99_ms:.2f} "
            f"confirmed_per_s={self.confirmed_per_s:.0f}"
        )


async def _prepare_database(settings: Settings) -> None:
    from reservation.store import catalog
    from reservation.store.db import create_pool
    from reservation.store.migrate import apply_migrations

    assert settings.database_url is not None
    await apply_migrations(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await catalog.upsert_provider(conn, *PROVIDER)
    finally:
        await pool.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url + "/readyz", timeout=2) as resp,
        ):
            if resp.status == 200:
                return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def served(
    settings: Settings, *, workers: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """``fairseat serve`` on a free port with these settings' URLs and secrets; yields
    (base URL, supervisor pid) and stops it (SIGTERM, then SIGKILL) afterwards."""
    from reservation.runtime.ports import free_port

    assert settings.database_url and settings.redis_url and settings.secret_key
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FAIRSEAT_") and k not in ("PROMETHEUS_MULTIPROC_DIR",)
    }
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        FAIRSEAT_DATA_DIR=str(settings.data_dir),
        FAIRSEAT_KEY_PREFIX=settings.key_prefix,
        FAIRSEAT_SHARD_COUNT=str(settings.shard_count),
        FAIRSEAT_REDIS_CLUSTER="1" if settings.redis_cluster else "0",
        FAIRSEAT_SECRET_KEY=settings.secret_key,
        FAIRSEAT_ID_HMAC_KEY=settings.id_hmac_key or "bench",
        FAIRSEAT_OPERATOR_KEY=settings.operator_key or "",
        FAIRSEAT_HOST="127.0.0.1",
        FAIRSEAT_PORT=str(port),
        FAIRSEAT_WORKERS=str(workers),
        FAIRSEAT_BACKGROUND_WORKERS="1",
        FAIRSEAT_SEED_DEMO="0",
    )
    env.update(extra_env or {})
    log_path = Path(settings.data_dir) / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reservation.cli", "--log-level", "WARNING", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        if not _wait_ready(url, proc, 60):
            raise RuntimeError(
                "fairseat serve did not become ready:\n" + log_path.read_text()[-4000:]
            )
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def measure_service(
    url: str,
    settings: Settings,
    *,
    seconds: float,
    concurrency: int,
    rounds: int = 3,
    processes: int = 1,
    client: str = "aiohttp",
    meter: CpuMeter | None = None,
    out: Callable[[str], None] = print,
) -> Figures:
    """The phases of the bench against a running service whose database and secret key
    ``settings`` names (citizens are inserted directly, tokens signed with the secret).
    With a ``meter``, the service's CPU time per operation is printed for each phase."""
    from loadtest.generator import LoadSpec, Op, Result, new_session, run
    from loadtest.invariants import check_invariants, drained
    from loadtest.scenarios import (
        BenchHold,
        Citizen,
        Healthz,
        SlotPlan,
        insert_citizens,
        publish_slots,
    )

    assert settings.database_url and settings.secret_key and settings.operator_key

    async def setup() -> tuple[list[str], list[Citizen]]:
        assert settings.database_url and settings.secret_key and settings.operator_key
        async with new_session(8) as session:
            slot_ids = await publish_slots(
                session,
                url,
                provider_id=PROVIDER[0],
                key=settings.operator_key,
                plan=SlotPlan(resources=RESOURCES, capacity=10_000, code_prefix="bench"),
            )
        citizens = await insert_citizens(settings.database_url, settings.secret_key, CITIZENS)
        return slot_ids, citizens

    slot_ids, citizens = asyncio.run(setup())
    blocks = iter(range(0, 1 << 40, BLOCK))

    def hold_op(*, confirm: bool = False) -> BenchHold:
        return BenchHold(url, citizens, slot_ids, offset=next(blocks), confirm=confirm)

    meter = meter or CpuMeter({})
    cpu: dict[int, dict[str, float]] = {}  # id(result) -> CPU µs per operation

    def measured(op: Op, spec: LoadSpec) -> Result:
        before = meter.snapshot()
        result = run(op, spec)
        cpu[id(result)] = meter.per_op_us(before, result.completed)
        return result

    def closed(op: Op, secs: float) -> Result:
        return measured(
            op,
            LoadSpec(seconds=secs, concurrency=concurrency, processes=processes, client=client),
        )

    def show(title: str, result: Result) -> None:
        out(title)
        out("  " + result.summary().replace("\n", "\n  "))
        if meter.pids:
            out("  " + describe_cpu(cpu[id(result)]))

    trivial = Healthz(url)
    closed(trivial, 1.0)  # warm-up: connections, the slot and person caches
    closed(hold_op(), 1.0)
    best_trivial = best_hold = None
    for _ in range(rounds):
        t = closed(trivial, seconds)
        h = closed(hold_op(), seconds)
        if best_trivial is None or t.rate > best_trivial.rate:
            best_trivial = t
        if best_hold is None or h.count(201) > best_hold.count(201):
            best_hold = h
    assert best_trivial is not None and best_hold is not None
    trivial_rate = best_trivial.count(200) / best_trivial.seconds
    hold_rate = best_hold.count(201) / best_hold.seconds
    show(f"trivial route GET /healthz, closed loop x{concurrency}, best of {rounds}:", best_trivial)
    show(f"hold POST /v1/bookings, closed loop x{concurrency}, best of {rounds}:", best_hold)
    out(f"hold rate / trivial rate = {hold_rate:,.0f} / {trivial_rate:,.0f}")
    if "http" in meter.pids:
        http_t, http_h = cpu[id(best_trivial)]["http"], cpu[id(best_hold)]["http"]
        out(
            f"HTTP workers' CPU per request: healthz {http_t:,.0f} µs, hold {http_h:,.0f} µs: "
            f"ratio by CPU {http_t / http_h if http_h else 0:.3f} (what the rate ratio is "
            "when the service, not the client or a neighbour, is the bottleneck)"
        )

    def let_persister_catch_up() -> None:
        # The closed loops outrun the persister (it shares the two cores): let it drain
        # so that its backlog does not eat into the next phase.
        started = time.monotonic()
        done = asyncio.run(drained(settings, timeout=120)).ok
        out(
            f"persister backlog {'drained' if done else 'NOT drained'} in "
            f"{time.monotonic() - started:.1f} s"
        )

    let_persister_catch_up()
    target = 0.8 * hold_rate
    at80 = measured(
        hold_op(),
        LoadSpec(
            seconds=max(seconds, 3.0),
            rate=target,
            concurrency=concurrency,
            processes=processes,
            # As many connections as the closed loops had: a backlog queues in the client
            # (and counts, from the intended send time) instead of opening ever more
            # connections, each of which makes the service slower per request.
            connections=concurrency,
            client=client,
        ),
    )
    show(f"hold, open loop at 80% of the best hold rate ({target:,.0f}/s):", at80)

    let_persister_catch_up()
    best_pairs = None
    for _ in range(max(1, rounds - 1)):
        pairs = closed(hold_op(confirm=True), seconds)
        if best_pairs is None or pairs.count(200) > best_pairs.count(200):
            best_pairs = pairs
    assert best_pairs is not None
    confirmed_rate = best_pairs.count(200) / best_pairs.seconds
    show(
        f"hold + confirm pairs, closed loop x{concurrency} (200 = committed in Postgres):",
        best_pairs,
    )

    report = asyncio.run(check_invariants(settings, drain_timeout=180, slot_ids=slot_ids))
    out(report.table())
    return Figures(
        trivial_per_s=trivial_rate,
        hold_per_s=hold_rate,
        p50_ms=at80.ms(50),
        p99_ms=at80.ms(99),
        confirmed_per_s=confirmed_rate,
        invariants_ok=report.ok,
    )


def _embedded_pid(settings: Settings, server: str) -> int | None:
    """The pid of the embedded ``server`` ("redis" or "postgres"), if ``bench_backends``
    started one."""
    try:
        info = json.loads((Path(settings.data_dir) / "runtime.json").read_text())
        return int(info[f"{server}_pid"])
    except (OSError, ValueError, KeyError):
        return None


def run_bench_http(
    settings: Settings,
    *,
    seconds: float,
    concurrency: int,
    workers: int = 2,
    processes: int = 2,
    client: str = "raw",
    out: Callable[[str], None] = print,
) -> int:
    """Run the bench (see the module docstring); returns the exit code.

    ``client="raw"``: the generator's minimal keep-alive client, which spends ~40 µs per
    request against aiohttp's ~100 µs; on two shared cores the client's CPU otherwise
    caps the trivial route's ceiling and inflates the ratio."""
    from reservation.bench import bench_backends

    with bench_backends(settings) as ready:
        ready = ready.replace(
            operator_key=ready.operator_key or "op_bench_" + secrets.token_urlsafe(12),
            workers=workers,
        )
        asyncio.run(_prepare_database(ready))
        raised_cap = {"FAIRSEAT_MAX_LIVE_HOLDS": str(BENCH_MAX_LIVE_HOLDS)}
        with served(ready, workers=workers, extra_env=raised_cap) as (url, pid):
            out(
                f"fairseat serve --workers {workers} at {url} (persister on); generator: "
                f"{processes} process(es), {client} client, keep-alive; load average "
                + " ".join(f"{x:.1f}" for x in os.getloadavg())
            )
            kids = serve_children(pid, workers + 1)
            pids = {"http": kids[:workers], "persister": kids[workers:]}
            redis_pid = _embedded_pid(ready, "redis")
            if redis_pid:
                pids["redis"] = [redis_pid]
            postgres_pid = _embedded_pid(ready, "postgres")
            trees = {"postgres": postgres_pid} if postgres_pid else {}
            figures = measure_service(
                url,
                ready,
                seconds=seconds,
                concurrency=concurrency,
                processes=processes,
                client=client,
                meter=CpuMeter(pids, trees),
                out=out,
            )
    out(
        f"ratio {figures.ratio:.3f} (target >= 0.4), p99 at 80% {figures.p99_ms:.2f} ms "
        f"(p50 {figures.p50_ms:.2f}; target <= 50), confirmed {figures.confirmed_per_s:,.0f}/s "
        "(target >= 10,000)"
    )
    out(figures.last_line())
    return 0 if figures.invariants_ok else 1
