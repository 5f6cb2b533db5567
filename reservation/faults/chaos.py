"""``fairseat chaos``: a booking rush while the servers and processes keep dying.

The harness owns everything it breaks. In a throwaway folder it starts Postgres (fsync
on: a committed booking must survive ``-m immediate``) and Valkey (AOF on, ``appendfsync
everysec``, the production setting), then the service as real processes: N HTTP workers
sharing one port (SO_REUSEPORT) and one background process (persister + sweeper), each a
child it supervises and restarts. A rush thread (its own event loop) registers citizens
and books through the public API, retrying every 503 and broken connection with the same
Idempotency-Key, as a well-behaved client does: two in three book a hospital slot (hold,
confirm), one in three orders a train seat on a small railway imported at the start
(hold a random trip, pay; one in five of those cancels instead). Meanwhile the main
thread injects faults on a schedule, cycling through (in a seeded random order):

- ``redis_kill``: SIGKILL Valkey, start it again on its AOF;
- ``redis_amnesia``: SIGKILL Valkey and delete its AOF, start it empty (a lost Redis);
  only when ``reservation.workflows.rebuild_inventory`` exists, which must then close
  sales until it has rebuilt the live inventory from Postgres;
- ``http_kill``: SIGKILL one HTTP worker (requests in flight lose their replies);
- ``background_kill``: SIGKILL the persister/sweeper process;
- ``postgres_immediate``: ``pg_ctl stop -m immediate`` (SIGQUIT, no checkpoint), start
  again (crash recovery).

With ``drop_rate`` > 0 the service's processes reach Valkey through a ``FaultProxy``
that loses that fraction of replies after Valkey executed the request.

Whenever the rush hears ``sales_closed`` after the last rebuild, the harness runs
``rebuild_inventory`` (an operator's job; here, the harness is the operator).

Afterwards: all servers up, sales open, the persister drained (no outbox entry
undelivered or pending), then the invariants:

- ``lost``: bookings and train orders the client was told "confirmed" that are not
  confirmed in Postgres (a paid order: its ticket, present exactly once);
- ``oversold``: slots with more live (held + confirmed) bookings than places, counted in
  Postgres and in Redis, or with more places on sale in Redis than are free; plus pairs
  of live train tickets (Postgres) or live seat holds (Redis) sharing a seat-segment;
- ``duplicates``: accounts with two live bookings or train orders (every rush citizen
  books once), an (account, Idempotency-Key) with two bookings, a person with two live
  tickets on one run;
- ``reconcile``: differences ``reconcile_inventory`` finds between Redis and Postgres.

The last line is ``faults=<n> confirmed=<n> lost=<n> oversold=<n> duplicates=<n>``; the
exit code is non-zero if lost, oversold or duplicates is not 0, if fewer faults than
planned were injected or if the rush crashed; with ``--strict`` also if reconcile is not
clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reservation.domain.clock import CHINA
from reservation.faults.proxy import FaultProxy
from reservation.settings import Settings

_REBUILD_MODULE = "reservation.workflows.rebuild_inventory"

_HTTP_MAIN = (
    "import sys\n"
    "from reservation.settings import Settings\n"
    "from reservation.runtime.serve import run_http_worker\n"
    "run_http_worker(Settings.from_env(), int(sys.argv[1]))\n"
)
_BACKGROUND_MAIN = (
    "from reservation.settings import Settings\n"
    "from reservation.runtime.serve import run_background_process\n"
    "run_background_process(Settings.from_env())\n"
)

PROVIDER = "chaos-hospital"

# The railway of the rush: two trains over four stations, one small second-class coach
# each (10 seats), so runs sell out within a round and seat-segments are sold again for
# other trips. A round sells the runs of one service date (13 dates, then again: the
# runs sold before are mostly sold out and only the trips still free sell).
CHAOS_STATIONS = ["VNP", "TIP", "NKH", "AOH"]
CHAOS_TRAINS = ["G9001", "G9003"]
CHAOS_DATES = 13


def chaos_network(today: dt.date) -> dict[str, Any]:
    stops = [
        {"station": "VNP", "depart": "22:00", "km": 0},
        {"station": "TIP", "arrive": "22:30", "depart": "22:32", "km": 131},
        {"station": "NKH", "arrive": "23:40", "depart": "23:42", "km": 1023},
        {"station": "AOH", "arrive": "23:58", "km": 1318},
    ]
    calendar = {"from": (today - dt.timedelta(days=1)).isoformat(), "to": "2099-12-31"}
    return {
        "stations": [
            {"code": "VNP", "name_zh": "北京南", "name_en": "Beijing South", "city": "Beijing"},
            {"code": "TIP", "name_zh": "天津南", "name_en": "Tianjin South", "city": "Tianjin"},
            {"code": "NKH", "name_zh": "南京南", "name_en": "Nanjing South", "city": "Nanjing"},
            {
                "code": "AOH",
                "name_zh": "上海虹桥",
                "name_en": "Shanghai Hongqiao",
                "city": "Shanghai",
            },
        ],
        "compositions": [
            {
                "id": "chaos-1",
                "coaches": [{"coach": "01", "class": "second", "layout": "2+3", "rows": 2}],
            }
        ],
        "trains": [
            {"number": n, "composition": "chaos-1", "calendar": calendar, "stops": stops}
            for n in CHAOS_TRAINS
        ],
    }


@dataclass(frozen=True, slots=True)
class Plan:
    faults: int
    interval_s: float  # between two faults
    slots_per_round: int
    capacity: int
    citizens_per_round: int
    concurrency: int
    http_workers: int = 2
    # Every ``train_every``-th citizen orders a train seat (hold -> pay, every fifth of
    # them cancels instead) on one of CHAOS_TRAINS' runs instead of booking a slot.
    train_every: int = 3


SHORT = Plan(
    faults=12,
    interval_s=2.5,
    slots_per_round=4,
    capacity=10,
    citizens_per_round=60,
    concurrency=48,
)
FULL = Plan(
    faults=64,
    interval_s=2.5,
    slots_per_round=6,
    capacity=10,
    citizens_per_round=90,
    concurrency=64,
)


# ---------------------------------------------------------------------------------------
# What the clients saw


@dataclass
class Citizen:
    number: int
    account_id: str = ""
    slot_id: str = ""
    hold_id: str = ""
    outcome: str = "pending"  # confirmed, sold_out, hold_lost:<code>, gave_up:<step>, …
    told_confirmed: bool = False
    train: bool = False  # ordered a train seat (hold_id is the order id) instead of a slot


@dataclass
class RushStats:
    requests: int = 0
    unavailable: int = 0  # 503s
    broken: int = 0  # connection errors and timeouts
    server_errors: int = 0  # 500s: bugs, never expected
    sales_closed: int = 0
    last_sales_closed: float = 0.0  # time.monotonic() of the latest sales_closed answer
    rounds: int = 0
    replies_dropped: int = 0  # by the fault proxy (--drop-rate)
    citizens: list[Citizen] = field(default_factory=list)
    slots: dict[str, int] = field(default_factory=dict)  # slot id -> capacity
    runs: set[str] = field(default_factory=set)  # train runs ordered on
    error: str | None = None


class _GiveUp(Exception):
    pass


# ---------------------------------------------------------------------------------------
# The rush (runs in its own thread, with its own event loop)


def _id_number(n: int) -> str:
    from stdnum.cn import ric

    birth = dt.date(1960, 1, 1) + dt.timedelta(days=n // 999)
    body = f"110105{birth:%Y%m%d}{n % 999 + 1:03d}"
    return str(body + ric.calc_check_digit(body + "0"))


class Rush:
    def __init__(
        self, base_url: str, staff_key: str, plan: Plan, seed: int, operator_key: str = ""
    ) -> None:
        self.base_url = base_url
        self.staff = {"Authorization": f"Bearer {staff_key}"}
        self.operator = {"Authorization": f"Bearer {operator_key}"}
        self.train_day = dt.datetime.now(CHINA).date()
        self.plan = plan
        self.rng = random.Random(seed)
        self.stats = RushStats()
        self.stop = threading.Event()
        self._numbers = itertools.count(1)

    async def request(
        self,
        http: Any,
        method: str,
        path: str,
        *,
        step: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        patience_s: float = 90.0,
    ) -> tuple[int, dict[str, Any]]:
        """Until a final answer: 503s, 500s and broken connections are retried as is."""
        import aiohttp

        deadline = time.monotonic() + patience_s
        pause = 0.05
        while True:
            self.stats.requests += 1
            try:
                async with http.request(
                    method, self.base_url + path, json=json, headers=headers
                ) as resp:
                    body: dict[str, Any] = await resp.json(content_type=None) or {}
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, ValueError):
                self.stats.broken += 1
            else:
                if status == 503:
                    self.stats.unavailable += 1
                    if body.get("code") == "sales_closed":
                        self.stats.sales_closed += 1
                        self.stats.last_sales_closed = time.monotonic()
                elif status >= 500:
                    self.stats.server_errors += 1
                else:
                    return status, body
            if time.monotonic() > deadline:
                raise _GiveUp(step)
            await asyncio.sleep(pause * (0.5 + self.rng.random()))
            pause = min(pause * 2, 1.0)

    async def publish_round(self, http: Any, round_no: int) -> list[str]:
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, minutes=round_no)
        body = {
            "resources": [
                {"code": f"r{round_no:04d}-{i}", "name": f"Doctor {round_no}/{i}"}
                for i in range(self.plan.slots_per_round)
            ],
            "slots": [
                {
                    "resource_code": f"r{round_no:04d}-{i}",
                    "starts_at": start.isoformat(),
                    "ends_at": (start + dt.timedelta(minutes=30)).isoformat(),
                    "capacity": self.plan.capacity,
                    "release_at": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(),
                }
                for i in range(self.plan.slots_per_round)
            ],
        }
        # Publication is all-or-nothing in Postgres and idempotent in Redis: a retry of
        # the identical batch completes it.
        status, answer = await self.request(
            http,
            "POST",
            f"/v1/providers/{PROVIDER}/slots",
            step="publish",
            json=body,
            headers=self.staff,
            patience_s=300,
        )
        if status != 201:
            raise RuntimeError(f"publish answered {status}: {answer}")
        ids = [str(s["id"]) for s in answer["slots"]]
        for slot_id in ids:
            self.stats.slots[slot_id] = self.plan.capacity
        return ids

    async def citizen(self, http: Any, who: Citizen, slot_ids: list[str]) -> None:
        try:
            await self._citizen(http, who, slot_ids)
        except _GiveUp as exc:
            who.outcome = f"gave_up:{exc}"

    async def _citizen(self, http: Any, who: Citizen, slot_ids: list[str]) -> None:
        phone = f"139{who.number:08d}"
        id_number = _id_number(who.number)
        person = {"phone": phone, "id_number": id_number}
        status, body = await self.request(
            http,
            "POST",
            "/v1/citizens",
            step="register",
            json={"name": "混沌", **person},
        )
        if status == 409:  # our first attempt was committed but its reply was lost
            status, body = await self.request(
                http, "POST", "/v1/sessions", step="sign_in", json=person
            )
        if status not in (200, 201):
            who.outcome = f"register:{status}"
            return
        who.account_id = str(body["account_id"])
        auth = {"Authorization": f"Bearer {body['token']}"}
        if who.train:
            await self._train_order(http, who, auth)
            return
        who.slot_id = slot_ids[who.number % len(slot_ids)]
        status, body = await self.request(
            http,
            "POST",
            "/v1/bookings",
            step="hold",
            json={"slot_id": who.slot_id},
            headers={**auth, "Idempotency-Key": f"chaos-{who.number}"},
        )
        if status == 409 and body.get("code") == "sold_out":
            who.outcome = "sold_out"
            return
        if status not in (200, 201):
            who.outcome = f"hold:{body.get('code', status)}"
            return
        who.hold_id = str(body["id"])
        status, body = await self.request(
            http, "POST", f"/v1/bookings/{who.hold_id}/confirm", step="confirm", headers=auth
        )
        if status == 200 and body.get("state") == "confirmed":
            who.told_confirmed = True
            who.outcome = "confirmed"
        else:
            # Allowed only when Redis lost the hold (amnesia): never a phantom ticket.
            who.outcome = f"hold_lost:{body.get('code', status)}"

    async def import_railway(self, http: Any) -> None:
        """The chaos railway (an idempotent import: a retry after a lost reply is fine)."""
        status, answer = await self.request(
            http,
            "POST",
            "/v1/timetables",
            step="timetable",
            json=chaos_network(self.train_day),
            headers=self.operator,
            patience_s=300,
        )
        if status not in (200, 201):
            raise RuntimeError(f"timetable import answered {status}: {answer}")

    def train_run(self, who: Citizen) -> str:
        rounds = self.stats.rounds + 1
        day = self.train_day + dt.timedelta(days=1 + rounds % CHAOS_DATES)
        return f"{CHAOS_TRAINS[who.number % len(CHAOS_TRAINS)]}-{day:%Y%m%d}"

    async def _train_order(self, http: Any, who: Citizen, auth: dict[str, str]) -> None:
        """Order one seat for the citizen themself on a random trip, then pay (a fifth
        cancel instead), retrying as a client does with the same Idempotency-Keys."""
        status, body = await self.request(
            http, "GET", "/v1/passengers", step="passengers", headers=auth
        )
        if status != 200 or not body.get("passengers"):
            who.outcome = f"passengers:{body.get('code', status)}"
            return
        run = self.train_run(who)
        self.stats.runs.add(run)
        a = self.rng.randrange(len(CHAOS_STATIONS) - 1)
        b = self.rng.randrange(a + 1, len(CHAOS_STATIONS))
        order = {
            "run_id": run,
            "from": CHAOS_STATIONS[a],
            "to": CHAOS_STATIONS[b],
            "seat_class": "second",
            "passenger_ids": [body["passengers"][0]["id"]],
        }
        status, body = await self.request(
            http,
            "POST",
            "/v1/orders",
            step="order",
            json=order,
            headers={**auth, "Idempotency-Key": f"chaos-train-{who.number}"},
        )
        if status == 409 and body.get("code") in ("no_seat_for_segments", "sold_out"):
            who.outcome = "sold_out"
            return
        if status not in (200, 201):
            who.outcome = f"order:{body.get('code', status)}"
            return
        who.hold_id = str(body["id"])
        if who.number % 5 == 0:
            status, body = await self.request(
                http, "POST", f"/v1/orders/{who.hold_id}/cancel", step="cancel", headers=auth
            )
            who.outcome = "cancelled" if status == 200 else f"hold_lost:{body.get('code')}"
            return
        status, body = await self.request(
            http,
            "POST",
            f"/v1/orders/{who.hold_id}/pay",
            step="pay",
            headers={**auth, "Idempotency-Key": f"chaos-pay-{who.number}"},
        )
        if status == 200 and body.get("state") == "confirmed":
            who.told_confirmed = True
            who.outcome = "confirmed"
        else:
            # Allowed only when Redis lost the hold (amnesia): never a phantom ticket.
            who.outcome = f"hold_lost:{body.get('code', status)}"

    async def _gated(
        self, gate: asyncio.Semaphore, http: Any, who: Citizen, slot_ids: list[str]
    ) -> None:
        async with gate:
            await self.citizen(http, who, slot_ids)

    async def run(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=20)
        connector = aiohttp.TCPConnector(limit=self.plan.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            await self.import_railway(http)
            round_no = 0
            while not self.stop.is_set():
                round_no += 1
                slot_ids = await self.publish_round(http, round_no)
                crowd = [Citizen(next(self._numbers)) for _ in range(self.plan.citizens_per_round)]
                for c in crowd:
                    c.train = self.plan.train_every > 0 and c.number % self.plan.train_every == 0
                self.stats.citizens.extend(crowd)
                gate = asyncio.Semaphore(self.plan.concurrency)

                await asyncio.gather(*(self._gated(gate, http, c, slot_ids) for c in crowd))
                self.stats.rounds = round_no

    def thread_main(self) -> None:
        try:
            asyncio.run(self.run())
        except BaseException as exc:  # reported by the harness, never swallowed
            self.stats.error = repr(exc)


# ---------------------------------------------------------------------------------------
# Processes


class ProxyThread:
    """A ``FaultProxy`` dropping a fraction of Redis replies, on its own event loop in a
    thread, between the service's processes and Valkey (the harness itself talks to
    Valkey directly)."""

    def __init__(self, redis_port: int, drop_rate: float, seed: int) -> None:
        self._args = (redis_port, drop_rate, seed)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.proxy: FaultProxy | None = None
        self._thread = threading.Thread(target=self._main, name="chaos-proxy", daemon=True)

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(10) or self.proxy is None:
            raise RuntimeError("the fault proxy did not start")
        return self.proxy.url

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        port, rate, seed = self._args
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with FaultProxy("127.0.0.1", port, mode="drop", drop_rate=rate, seed=seed) as p:
            self.proxy = p
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class Children:
    """The service's processes: HTTP workers and one background process, restarted when
    they die (a supervisor's job)."""

    def __init__(self, settings: Settings, folder: Path, http_workers: int) -> None:
        self.settings = settings
        self.folder = folder
        self.http: list[subprocess.Popen[bytes] | None] = [None] * http_workers
        self.background: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._logs: list[IO[bytes]] = []

    def _env(self, *, background: bool) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSEAT_", "PROM"))}
        env.update(
            DATABASE_URL=str(s.database_url),
            REDIS_URL=str(s.redis_url),
            FAIRSEAT_SECRET_KEY=str(s.secret_key),
            FAIRSEAT_ID_HMAC_KEY=str(s.id_hmac_key),
            FAIRSEAT_OPERATOR_KEY=str(s.operator_key),
            FAIRSEAT_HOST=s.host,
            FAIRSEAT_PORT=str(s.port),
            FAIRSEAT_KEY_PREFIX=s.key_prefix,
            FAIRSEAT_SEED_DEMO="0",
            FAIRSEAT_DATA_DIR=str(self.folder),
            FAIRSEAT_CLAIM_IDLE_MS=str(s.persister_claim_idle_ms),
            FAIRSEAT_BACKGROUND_WORKERS="1" if background else "0",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _spawn(self, script: str, args: list[str], name: str, *, background: bool) -> Any:
        log = (self.folder / f"{name}.log").open("ab")
        self._logs.append(log)
        # From the main thread: the children's parent-death signal follows this thread.
        return subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env(background=background),
        )

    def start_http(self, index: int) -> None:
        self.http[index] = self._spawn(_HTTP_MAIN, [str(index)], f"http-{index}", background=False)

    def start_background(self) -> None:
        self.background = self._spawn(_BACKGROUND_MAIN, [], "background", background=True)

    def start_all(self) -> None:
        for i in range(len(self.http)):
            self.start_http(i)
        self.start_background()

    def supervise(self) -> None:
        """Restart whatever died (a worker starting while Postgres is down exits at once;
        it is simply started again on a later tick)."""
        for i, proc in enumerate(self.http):
            if proc is None or proc.poll() is not None:
                self.restarts += 1
                self.start_http(i)
        if self.background is None or self.background.poll() is not None:
            self.restarts += 1
            self.start_background()

    def kill_http(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.http))
        proc = self.http[index]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def kill_background(self) -> None:
        if self.background is not None and self.background.poll() is None:
            self.background.kill()
            self.background.wait()

    def stop_all(self) -> None:
        procs = [p for p in [*self.http, self.background] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()


# ---------------------------------------------------------------------------------------
# Async helpers run from the main thread (each with its own short event loop)


def _rebuild_available() -> bool:
    return importlib.util.find_spec(_REBUILD_MODULE) is not None


async def _setup(settings: Settings) -> str:
    from reservation.auth import new_api_key
    from reservation.store import accounts as account_store
    from reservation.store import catalog
    from reservation.store.db import create_pool
    from reservation.store.migrate import apply_migrations

    assert settings.database_url is not None
    await apply_migrations(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await catalog.upsert_provider(conn, PROVIDER, "Chaos General Hospital", "hospital")
            key = new_api_key()
            await account_store.create_api_key(
                conn, api_key=key, role="staff", provider_id=PROVIDER
            )
    finally:
        await pool.close()
    return key


async def _rebuild(settings: Settings) -> str:
    import importlib

    from reservation.services import open_services

    module = importlib.import_module(_REBUILD_MODULE)
    async with open_services(settings, pg_pool_size=2) as services:
        report = await module.rebuild_inventory(services)
    return str(report)


def _rebuild_patiently(settings: Settings, out: Callable[[str], None]) -> str:
    """Rebuild, retrying while a backend is still coming back (a fault may have hit
    Postgres just before Redis)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return asyncio.run(_rebuild(settings))
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            out(f"  rebuild failed ({exc!r}); retrying")
            time.sleep(1.0)


async def _drained(settings: Settings) -> bool:
    """Every outbox entry delivered to the persister and acknowledged."""
    import redis.asyncio as aioredis

    from inventory.keys import Keys

    keys = Keys(prefix=settings.key_prefix, shard_count=settings.shard_count)
    client = aioredis.Redis.from_url(str(settings.redis_url), decode_responses=True)
    async with client as r, r.pipeline(transaction=False) as pipe:
        for shard in range(settings.shard_count):
            pipe.xinfo_groups(keys.outbox(shard))
        replies = await pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, Exception):
            if "no such key" in str(reply).lower():
                continue
            return False
        groups = [g for g in reply if g["name"] == "persister"]
        if not groups:
            return False
        group = groups[0]
        if int(group["pending"]) or (group.get("lag") not in (None, 0, "0")):
            return False
    return True


@dataclass
class Verdict:
    confirmed: int = 0
    lost: int = 0
    oversold: int = 0
    duplicates: int = 0
    reconcile: int | None = None  # None: no reconcile_inventory to ask
    notes: list[str] = field(default_factory=list)


async def _verify(settings: Settings, stats: RushStats) -> Verdict:
    import asyncpg
    import redis.asyncio as aioredis

    verdict = Verdict()
    told = [c.hold_id for c in stats.citizens if c.told_confirmed and not c.train]
    told_orders = [c.hold_id for c in stats.citizens if c.told_confirmed and c.train]
    verdict.confirmed = len(told) + len(told_orders)
    conn = await asyncpg.connect(str(settings.database_url))
    try:
        seats = await _verify_seats_in_postgres(conn, told_orders)
        found = await conn.fetchval(
            "SELECT count(*) FROM bookings WHERE id = ANY($1::text[]) AND state = 'confirmed'",
            told,
        )
        verdict.lost = len(told) - int(found)
        pg_over = await conn.fetch(
            "SELECT s.id, s.capacity, count(b.id) AS live FROM slots s"
            " JOIN bookings b ON b.slot_id = s.id AND b.state IN ('held', 'confirmed')"
            " GROUP BY s.id, s.capacity HAVING count(b.id) > s.capacity"
        )
        dup_accounts = await conn.fetchval(
            "SELECT count(*) FROM (SELECT account_id FROM bookings"
            " WHERE state IN ('held', 'confirmed') GROUP BY account_id HAVING count(*) > 1) d"
        )
        dup_keys = await conn.fetchval(
            "SELECT count(*) FROM (SELECT account_id, idempotency_key FROM bookings"
            " WHERE idempotency_key <> '' GROUP BY account_id, idempotency_key"
            " HAVING count(*) > 1) d"
        )
        pg_rows = await conn.fetchval("SELECT count(*) FROM bookings")
    finally:
        await conn.close()
    oversold = {str(r["id"]) for r in pg_over}

    # Redis: live holds per slot and per account, and the stock on sale.
    live_per_slot: dict[str, int] = {}
    live_per_account: dict[str, int] = {}
    async with aioredis.Redis.from_url(str(settings.redis_url), decode_responses=True) as r:
        hold_keys = [k async for k in r.scan_iter(match=f"{settings.key_prefix}:*:hold:*")]
        async with r.pipeline(transaction=False) as pipe:
            for key in hold_keys:
                pipe.hmget(key, ["slot", "account", "state"])
            holds = await pipe.execute()
        slot_ids = list(stats.slots)
        from inventory.keys import Keys
        from inventory.slot_engine import shard_from_id

        keys = Keys(prefix=settings.key_prefix, shard_count=settings.shard_count)
        async with r.pipeline(transaction=False) as pipe:
            for slot_id in slot_ids:
                pipe.hmget(keys.slot(shard_from_id(slot_id), slot_id), ["capacity", "available"])
            stock = await pipe.execute()
    for slot, account, state in holds:
        if slot is None or state not in ("held", "confirmed"):
            continue
        live_per_slot[slot] = live_per_slot.get(slot, 0) + 1
        live_per_account[account] = live_per_account.get(account, 0) + 1
    for slot_id, (capacity, available) in zip(slot_ids, stock, strict=True):
        if capacity is None:
            verdict.notes.append(f"slot {slot_id} missing from Redis")
            continue
        live = live_per_slot.get(slot_id, 0)
        if live > int(capacity) or int(available) > int(capacity) - live:
            oversold.add(slot_id)
    redis_seats = await _verify_seats_in_redis(settings)
    verdict.lost += seats.lost
    verdict.oversold = len(oversold) + seats.sold_twice + redis_seats.sold_twice
    redis_dups = sum(1 for n in live_per_account.values() if n > 1)
    verdict.duplicates = (
        int(dup_accounts) + int(dup_keys) + redis_dups + seats.duplicates + redis_seats.duplicates
    )
    verdict.notes.append(
        f"postgres bookings={pg_rows} redis live holds={sum(live_per_slot.values())}"
    )
    verdict.notes.append(
        f"train orders: told confirmed={len(told_orders)} tickets={seats.tickets}"
        f" (confirmed={seats.confirmed}) lost={seats.lost}"
        f" seat-segments sold twice: postgres={seats.sold_twice} redis={redis_seats.sold_twice}"
        f" duplicates: postgres={seats.duplicates} redis={redis_seats.duplicates}"
        f" redis live seat holds={redis_seats.live_holds}"
    )

    if _rebuild_available():
        import importlib

        from reservation.services import open_services

        module = importlib.import_module(_REBUILD_MODULE)
        if hasattr(module, "reconcile_inventory"):
            async with open_services(settings, pg_pool_size=2) as services:
                differences = await module.reconcile_inventory(services)
            verdict.reconcile = len(differences)
            kinds: dict[str, int] = {}
            for d in differences:
                kinds[d.kind] = kinds.get(d.kind, 0) + 1
            if kinds:
                verdict.notes.append(
                    "reconcile kinds: " + " ".join(f"{k}={n}" for k, n in sorted(kinds.items()))
                )
            verdict.notes.extend(f"reconcile: {d}" for d in list(differences)[:10])
    return verdict


@dataclass
class SeatVerdict:
    tickets: int = 0
    confirmed: int = 0
    lost: int = 0  # orders told "confirmed" without a confirmed ticket in Postgres
    sold_twice: int = 0  # pairs of live tickets/holds sharing a seat-segment
    duplicates: int = 0  # accounts or persons with two live tickets on a run
    live_holds: int = 0


async def _verify_seats_in_postgres(conn: Any, told_orders: list[str]) -> SeatVerdict:
    """The train invariants in Postgres. Each rush citizen orders once, for themself."""
    from loadtest.invariants import PERSON_RUN_DUPLICATES, SEAT_SEGMENT_SHARED

    v = SeatVerdict()
    v.tickets = int(await conn.fetchval("SELECT count(*) FROM tickets"))
    v.confirmed = int(await conn.fetchval("SELECT count(*) FROM tickets WHERE state = 'confirmed'"))
    # Present exactly once: one confirmed ticket (passenger 1 of a party of one) per order.
    found = await conn.fetchval(
        "SELECT count(*) FROM tickets WHERE hold_id = ANY($1::text[]) AND state = 'confirmed'",
        told_orders,
    )
    v.lost = len(told_orders) - int(found)
    # The same queries as the post-run checker's seat checks (loadtest.invariants).
    v.sold_twice = len(await conn.fetch(SEAT_SEGMENT_SHARED))
    v.duplicates = int(
        await conn.fetchval(
            """SELECT count(*) FROM (SELECT account_id FROM tickets
               WHERE state IN ('held', 'confirmed') GROUP BY account_id
               HAVING count(DISTINCT hold_id) > 1) d"""
        )
    ) + len(await conn.fetch(PERSON_RUN_DUPLICATES))
    return v


async def _verify_seats_in_redis(settings: Settings) -> SeatVerdict:
    """The live seat holds in Redis: no seat-segment in two of them, one per account."""
    import redis.asyncio as aioredis

    from inventory import hold_record

    v = SeatVerdict()
    taken: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    per_account: dict[str, int] = {}
    async with aioredis.Redis.from_url(str(settings.redis_url), decode_responses=True) as r:
        hold_keys = [k async for k in r.scan_iter(match=f"{settings.key_prefix}:*:hold:*")]
        async with r.pipeline(transaction=False) as pipe:
            for key in hold_keys:
                pipe.hmget(key, [hold_record.FIELD, "state", "gone"])
            holds = await pipe.execute()
    for fixed, state, gone in holds:
        if fixed is None or state not in ("held", "confirmed"):
            continue  # not a seat hold (slot holds have no packed field), or not live
        h = hold_record.unpack(fixed)
        if h["kind"] != "seat":
            continue
        run, cls, a, b, seats, acct = h["run"], h["cls"], h["a"], h["b"], h["seats"], h["acct"]
        v.live_holds += 1
        per_account[acct] = per_account.get(acct, 0) + 1
        for place, tail in enumerate(seats.split(";"), 1):
            if f",{place}," in (gone or ""):
                continue
            trips = taken.setdefault((run, cls, tail.split("|")[0]), [])
            v.sold_twice += sum(1 for x, y in trips if x < int(b) and int(a) < y)
            trips.append((int(a), int(b)))
    v.duplicates = sum(1 for n in per_account.values() if n > 1)
    return v


# ---------------------------------------------------------------------------------------
# The run


def _fault_cycle(rng: random.Random, with_amnesia: bool) -> Iterator[str]:
    kinds = ["redis_kill", "http_kill", "background_kill", "postgres_immediate", "http_kill"]
    if with_amnesia:
        kinds.append("redis_amnesia")
    while True:
        batch = list(kinds)
        rng.shuffle(batch)
        yield from batch


def _wipe_redis_data(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.name.endswith(".log"):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@dataclass
class Outcome:
    faults: int
    verdict: Verdict
    stats: RushStats
    by_kind: dict[str, int]
    rebuilds: int
    restarts: int
    seconds: float

    @property
    def ok(self) -> bool:
        v = self.verdict
        return v.lost == 0 and v.oversold == 0 and v.duplicates == 0

    def last_line(self) -> str:
        v = self.verdict
        return (
            f"faults={self.faults} confirmed={v.confirmed} lost={v.lost} "
            f"oversold={v.oversold} duplicates={v.duplicates}"
        )


def run_chaos(
    plan: Plan,
    *,
    seed: int,
    amnesia: bool = True,
    drop_rate: float = 0.0,
    keep_logs: Path | None = None,
    out: Callable[[str], None] = print,
) -> Outcome:
    """Start throwaway servers and the service, rush, break things, check. Main thread
    only (the servers' parent-death signal follows the thread that started them)."""
    from reservation.runtime.embedded import PostgresServer, RedisServer
    from reservation.runtime.ports import free_port
    from reservation.runtime.procutil import throwaway_dir
    from reservation.runtime.serve import wait_ready

    rng = random.Random(seed)
    started = time.monotonic()
    with throwaway_dir("fairseat-chaos-") as folder, contextlib.ExitStack() as stack:
        pg = PostgresServer(folder / "postgres", fsync=True)
        stack.callback(pg.stop_and_delete_data)
        pg.start()
        redis_server = RedisServer(folder / "redis", appendonly=True)
        stack.callback(redis_server.stop)
        redis_server.start()
        settings = Settings(
            database_url=pg.url,
            redis_url=redis_server.url,
            data_dir=folder,
            port=free_port(),
            secret_key=f"chaos-{seed}-secret",
            id_hmac_key=f"chaos-{seed}-hmac",
            operator_key=f"op_chaos_{seed}",
            key_prefix="chaos",
            seed_demo_data=False,
            persister_claim_idle_ms=3000,
        )
        staff_key = asyncio.run(_setup(settings))
        rebuilds = 0
        with_amnesia = amnesia and _rebuild_available()
        if _rebuild_available():
            # A fresh inventory must be opened once, as an operator does after install.
            out(f"rebuild: {_rebuild_patiently(settings, out)}")
            rebuilds += 1
        else:
            out(f"note: {_REBUILD_MODULE} not found: no amnesia faults, no rebuilds")
        if not with_amnesia:
            out("note: no amnesia faults; rebuilds only when the rush hears sales_closed")
        service_settings = settings
        proxy: ProxyThread | None = None
        if drop_rate > 0:
            proxy = ProxyThread(redis_server.port, drop_rate, seed)
            service_settings = settings.replace(redis_url=proxy.start())
            stack.callback(proxy.stop)
            out(f"lost replies: the service reaches Redis through a proxy dropping {drop_rate:.1%}")
        children = Children(service_settings, folder, plan.http_workers)
        stack.callback(children.stop_all)
        children.start_all()
        url = f"http://{settings.host}:{settings.port}"
        if not wait_ready(url, 60, poll_s=0.1):
            raise RuntimeError(f"the service did not become ready; logs in {folder}")
        out(
            f"chaos: seed={seed} faults planned={plan.faults} workers={plan.http_workers} "
            f"postgres={pg.port} valkey={redis_server.port} (appendfsync everysec) http={url}"
        )

        rush = Rush(url, staff_key, plan, seed, operator_key=str(settings.operator_key))
        thread = threading.Thread(target=rush.thread_main, name="chaos-rush", daemon=True)
        thread.start()
        by_kind: dict[str, int] = {}
        faults = 0
        last_rebuild_done = time.monotonic()

        def tend(seconds: float) -> None:
            """Supervise for ``seconds``: restart dead children, rebuild if closed."""
            nonlocal rebuilds, last_rebuild_done
            until = time.monotonic() + seconds
            while time.monotonic() < until or seconds == 0:
                children.supervise()
                if _rebuild_available() and rush.stats.last_sales_closed > last_rebuild_done + 0.3:
                    report = _rebuild_patiently(settings, out)
                    rebuilds += 1
                    last_rebuild_done = time.monotonic()
                    out(f"  rebuild #{rebuilds}: {report}")
                if seconds == 0:
                    return
                time.sleep(0.1)

        tend(1.0)  # let the rush get going
        cycle = _fault_cycle(rng, with_amnesia)
        while faults < plan.faults:
            if rush.stats.error is not None:
                break
            kind = next(cycle)
            at = time.monotonic() - started
            if kind == "redis_kill":
                redis_server.kill()
                time.sleep(0.2)
                redis_server.start()
            elif kind == "redis_amnesia":
                redis_server.kill()
                _wipe_redis_data(redis_server.data_dir)
                redis_server.start()
            elif kind == "http_kill":
                children.kill_http(rng)
            elif kind == "background_kill":
                children.kill_background()
            elif kind == "postgres_immediate":
                pg.stop_immediate()
                time.sleep(0.2)
                pg.start()
            faults += 1
            by_kind[kind] = by_kind.get(kind, 0) + 1
            out(
                f"  [{at:6.1f}s] fault {faults}: {kind}  (citizens {len(rush.stats.citizens)},"
                f" 503s {rush.stats.unavailable}, broken {rush.stats.broken})"
            )
            if kind.startswith("redis_") and with_amnesia:
                # The operator's move: a restarted Redis (its run_id is new) closes sales
                # until the live inventory is rebuilt from Postgres; an empty one surely.
                time.sleep(0.3)  # the service notices first, as it would in production
                rebuilds += 1
                out(f"  rebuild #{rebuilds}: {_rebuild_patiently(settings, out)}")
                last_rebuild_done = time.monotonic()
            tend(plan.interval_s * (0.6 + 0.8 * rng.random()))

        out("faults done; letting the rush finish its round")
        rush.stop.set()
        while thread.is_alive():
            tend(0.5)
        if rush.stats.error is not None:
            out(f"rush failed: {rush.stats.error}")
        if not wait_ready(url, 60, poll_s=0.1):
            out("warning: the service is not ready after the run")
        drain_deadline = time.monotonic() + 90
        while not asyncio.run(_drained(settings)):
            if time.monotonic() > drain_deadline:
                out("warning: the persister did not drain within 90 s")
                break
            tend(0.5)
        verdict = asyncio.run(_verify(settings, rush.stats))
        if proxy is not None and proxy.proxy is not None:
            rush.stats.replies_dropped = proxy.proxy.counters.replies_dropped
        outcome = Outcome(
            faults=faults,
            verdict=verdict,
            stats=rush.stats,
            by_kind=by_kind,
            rebuilds=rebuilds,
            restarts=children.restarts,
            seconds=time.monotonic() - started,
        )
        if rush.stats.error is not None:
            outcome.verdict.notes.append(f"rush error: {rush.stats.error}")
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for log in [*folder.glob("*.log"), *folder.glob("*/*.log")]:
                shutil.copy(log, keep_logs / f"{log.parent.name}-{log.name}")
            outcome.verdict.notes.append(f"logs copied to {keep_logs}")
        return outcome


def report(
    outcome: Outcome, plan: Plan, *, strict: bool = False, out: Callable[[str], None] = print
) -> int:
    """Print the summary; the exit code. ``strict``: a non-clean reconcile fails too."""
    stats = outcome.stats
    outcomes: dict[str, int] = {}
    for c in stats.citizens:
        outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
    out(
        f"rush: rounds={stats.rounds} citizens={len(stats.citizens)} slots={len(stats.slots)}"
        f" requests={stats.requests} 503={stats.unavailable} broken={stats.broken}"
        f" 500={stats.server_errors} sales_closed={stats.sales_closed}"
        f" redis_replies_dropped={stats.replies_dropped}"
    )
    out("outcomes: " + " ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
    out(
        "faults by kind: "
        + " ".join(f"{k}={v}" for k, v in sorted(outcome.by_kind.items()))
        + f"; process restarts={outcome.restarts} rebuilds={outcome.rebuilds}"
        + f"; {outcome.seconds:.0f} s"
    )
    for note in outcome.verdict.notes:
        out(note)
    reconcile = outcome.verdict.reconcile
    out("reconcile=" + ("n/a (no reconcile_inventory)" if reconcile is None else str(reconcile)))
    out(outcome.last_line())
    failed = not outcome.ok or outcome.faults < plan.faults or stats.error is not None
    if strict and outcome.verdict.reconcile:
        failed = True
    return 1 if failed else 0
