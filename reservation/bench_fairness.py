"""``fairseat bench fairness``: who gets the stock at a sale opening, bots or people?

Runs the real service (``fairseat serve --workers 2`` on throwaway servers unless
``DATABASE_URL``/``REDIS_URL`` are set, as ``bench http`` does) and simulates one sale
opening twice, with the same population and the same stock:

- a **queued sale**: everyone joins the waiting room; the opening window's joiners are
  drawn, admission is paced to the stock, a hold needs the queue token;
- a **plain first-come-first-served sale**: everyone fires holds at the release.

Two groups: **bots** (react ~10 ms after the release or an admission, poll and retry
every 10 ms, ignore ``Retry-After``) and **people** (react 300–2,000 ms after the release
and after being admitted, poll every second, respect ``Retry-After``). For each sale and
group it prints the share of the stock won divided by the share of the population (1 =
fair, 2 = with half the population, bots took everything). The last line:
``bot_advantage=<queued> fcfs_bot_advantage=<fcfs>``.

Every client has a keep-alive connection of its own, opened before the release (as a bot,
or a browser that loaded the page, would have), and one request in flight at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from reservation.settings import Settings

PROVIDER = ("bench-fairness", "Fairness bench hospital", "hospital")
BOT_REACTION_MS = (8, 12)
BOT_RETRY_S = 0.010
PEOPLE_REACTION_MS = (300, 2000)
PEOPLE_POLL_S = 1.0
LEAD_S = 4.0  # between publishing a sale and its release: every client is set by then


@dataclass
class Group:
    name: str
    population: int
    won: int = 0


@dataclass
class Outcome:
    title: str
    stock: int
    bots: Group
    people: Group
    notes: list[str] = field(default_factory=list)

    @property
    def won(self) -> int:
        return self.bots.won + self.people.won

    def advantage(self, group: Group) -> float:
        everyone = self.bots.population + self.people.population
        if not self.won or not group.population:
            return math.nan
        return (group.won / self.won) / (group.population / everyone)

    def table(self) -> list[str]:
        everyone = self.bots.population + self.people.population
        lines = [
            self.title,
            f"  {'group':<8}{'people':>8}{'share':>8}{'places':>8}{'share':>8}{'advantage':>11}",
        ]
        for g in (self.bots, self.people):
            share_won = g.won / self.won if self.won else math.nan
            lines.append(
                f"  {g.name:<8}{g.population:>8}{g.population / everyone:>8.3f}{g.won:>8}"
                f"{share_won:>8.3f}{self.advantage(g):>11.3f}"
            )
        lines.append(f"  places sold {self.won} of {self.stock}")
        lines += [f"  {n}" for n in self.notes]
        return lines


def null_spread(population: int, bots: int, sold: int) -> float:
    """Half-width of the 95% range of bot_advantage when the allocation ignores who is a
    bot (hypergeometric: ``sold`` places drawn from the population without replacement)."""
    if not (population and bots and sold) or population < 2:
        return math.nan
    p = bots / population
    var = sold * p * (1 - p) * (population - sold) / (population - 1)
    return 1.96 * math.sqrt(var) / sold / p


async def _json(resp: Any) -> dict[str, Any]:
    with contextlib.suppress(Exception):
        body = await resp.json(content_type=None)
        if isinstance(body, dict):
            return body
    return {}


def _code(answer: dict[str, Any]) -> str:
    """The answer's code; for an unavailable backend, which one (the message's first word)."""
    code = str(answer.get("code") or "")
    if code == "store_unavailable":
        code += f" ({str(answer.get('message', '')).split(' ')[0]})"
    return code


class Bench:
    def __init__(self, url: str, operator_key: str, rng: random.Random) -> None:
        self.url = url
        self.operator = {"Authorization": f"Bearer {operator_key}"}
        self.rng = rng
        # (sale, group) -> answer -> count: what the clients were told, for the report
        self.answers: dict[tuple[str, str], Counter[str]] = {}

    def tally(self, sale: str, bot: bool, status: int, code: object = None) -> None:
        key = (sale, "bots" if bot else "people")
        self.answers.setdefault(key, Counter())[f"{status}{' ' + str(code) if code else ''}"] += 1

    async def publish(self, session: Any, *, code: str, capacity: int, release: dt.datetime) -> str:
        start = release + dt.timedelta(days=1)
        body = {
            "resources": [{"code": code, "name": f"Bench {code}"}],
            "slots": [
                {
                    "resource_code": code,
                    "starts_at": start.isoformat(),
                    "ends_at": (start + dt.timedelta(minutes=30)).isoformat(),
                    "capacity": capacity,
                    "release_at": release.isoformat(),
                }
            ],
        }
        async with session.post(
            f"{self.url}/v1/providers/{PROVIDER[0]}/slots", json=body, headers=self.operator
        ) as resp:
            if resp.status != 201:
                raise RuntimeError(f"publish: {resp.status} {(await resp.text())[:300]}")
            return str((await resp.json())["slots"][0]["id"])

    async def queue_sale(self, session: Any, sale_id: str, release: dt.datetime) -> dict[str, Any]:
        body = {
            "sale_id": sale_id,
            "kind": "slots",
            "provider_id": PROVIDER[0],
            "release_at": release.isoformat(),
        }
        async with session.post(f"{self.url}/v1/sales", json=body, headers=self.operator) as r:
            if r.status != 201:
                raise RuntimeError(f"queue sale: {r.status} {(await r.text())[:300]}")
            return await _json(r)

    def reaction_s(self, bot: bool) -> float:
        low, high = BOT_REACTION_MS if bot else PEOPLE_REACTION_MS
        return self.rng.uniform(low, high) / 1000

    async def request(
        self, session: Any, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> tuple[int, dict[str, Any], float]:
        """(status, JSON body, Retry-After seconds); status 0 when the request failed (a
        client-side timeout under load, a reset connection): the caller retries it."""
        try:
            async with session.request(method, self.url + path, json=body, headers=headers) as resp:
                retry_after = float(resp.headers.get("Retry-After", "1") or 1)
                return resp.status, await _json(resp), retry_after
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return 0, {}, 1.0

    # One client of the queued sale ---------------------------------------------------------
    async def queued_client(
        self,
        session: Any,
        headers: dict[str, str],
        bot: bool,
        sale_id: str,
        slot_id: str,
        release_at: float,
        give_up_at: float,
    ) -> bool:
        await asyncio.sleep(max(0.0, release_at + self.reaction_s(bot) - time.time()))
        queue = f"/v1/sales/{sale_id}/queue"
        pause = BOT_RETRY_S if bot else PEOPLE_POLL_S
        while time.time() < give_up_at:  # join (idempotent: retried until answered)
            status, _, _ = await self.request(session, "POST", queue, headers)
            if status in (200, 201):
                break
            if status == 409:
                return False
            await asyncio.sleep(pause)
        while time.time() < give_up_at:
            status, state, _ = await self.request(session, "GET", queue, headers)
            if state.get("state") == "done":
                return True  # held, though the answer was lost on the way
            if state.get("state") in ("sold_out", "lapsed", "over"):
                return False
            if state.get("state") == "admitted":
                await asyncio.sleep(self.reaction_s(bot))
                token = {
                    **headers,
                    "Queue-Token": str(state["queue_token"]),
                    "Idempotency-Key": "queued",
                }
                status, answer, _ = await self.request(
                    session, "POST", "/v1/bookings", token, {"slot_id": slot_id}
                )
                self.tally("queued", bot, status, _code(answer))
                if status in (200, 201):
                    return True
                if answer.get("code") == "sold_out":
                    return False
            await asyncio.sleep(pause)
        return False

    # One client of the plain sale ----------------------------------------------------------
    async def fcfs_client(
        self,
        session: Any,
        headers: dict[str, str],
        bot: bool,
        slot_id: str,
        release_at: float,
        give_up_at: float,
    ) -> bool:
        await asyncio.sleep(max(0.0, release_at + self.reaction_s(bot) - time.time()))
        # One key for every attempt: a retry after a lost answer is told it holds already.
        keyed = {**headers, "Idempotency-Key": "fcfs"}
        while time.time() < give_up_at:
            status, answer, retry_after = await self.request(
                session, "POST", "/v1/bookings", keyed, {"slot_id": slot_id}
            )
            self.tally("fcfs", bot, status, _code(answer))
            if status in (200, 201):
                return True
            if answer.get("code") == "sold_out":
                return False
            await asyncio.sleep(BOT_RETRY_S if bot else max(PEOPLE_POLL_S, retry_after))
        return False


async def run_sales(
    url: str,
    settings: Settings,
    *,
    participants: int,
    bot_share: float,
    stock: int,
    window_s: int,
    seed: int | None,
    out: Callable[[str], None] = print,
) -> tuple[Outcome, Outcome]:
    from loadtest.scenarios import insert_citizens
    from reservation.fairness import audit, lottery

    assert settings.database_url and settings.secret_key and settings.operator_key
    rng = random.Random(seed)
    bench = Bench(url, settings.operator_key, rng)
    citizens = await insert_citizens(settings.database_url, settings.secret_key, participants)
    n_bots = round(participants * bot_share)
    roles = [True] * n_bots + [False] * (participants - n_bots)
    rng.shuffle(roles)
    tag = secrets.token_hex(3)
    # A connection per client, as on real phones and bot farms: each client has one
    # request in flight at a time, so the server's backlog is bounded by the population.
    bot_pool = aiohttp.TCPConnector(limit=max(1, n_bots))
    people_pool = aiohttp.TCPConnector(limit=max(1, participants - n_bots))
    # No total limit: waiting for a pooled connection is part of the rush, not a failure.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
    async with (
        aiohttp.ClientSession(connector=bot_pool, timeout=timeout) as bots,
        aiohttp.ClientSession(connector=people_pool, timeout=timeout) as people,
    ):

        def session_of(bot: bool) -> Any:
            return bots if bot else people

        async def warm_up() -> None:
            # Open every pooled connection before the release, as a bot (or a browser
            # that loaded the page) would have: the opening measures requests, not connects.
            async def one(session: Any) -> None:
                async with session.get(f"{url}/healthz") as resp:
                    await resp.read()

            await asyncio.gather(*(one(bots) for _ in range(n_bots)))
            await asyncio.gather(*(one(people) for _ in range(participants - n_bots)))

        # The queued sale.
        release = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=LEAD_S + 1)
        slot_id = await bench.publish(people, code=f"q{tag}", capacity=stock, release=release)
        sale_id = f"bench-{tag}"
        await bench.queue_sale(people, sale_id, release)
        await warm_up()
        release_at = release.timestamp()
        give_up = release_at + window_s + 90
        results = await asyncio.gather(
            *(
                bench.queued_client(
                    session_of(bot), c.headers, bot, sale_id, slot_id, release_at, give_up
                )
                for c, bot in zip(citizens, roles, strict=True)
            )
        )
        queued = Outcome(
            f"queued sale (opening window {window_s} s, admission paced to the stock):",
            stock,
            Group("bots", n_bots, sum(w for w, b in zip(results, roles, strict=True) if b)),
            Group(
                "people",
                participants - n_bots,
                sum(w for w, b in zip(results, roles, strict=True) if not b),
            ),
        )
        async with people.get(f"{url}/v1/sales/{sale_id}/draw") as resp:
            record = await _json(resp)
        entries = record.get("audit", {}).get("entries", [])
        joiners = [lottery.Joiner.from_dict(j) for j in record.get("joiners", [])]
        try:
            order = lottery.verify_from_log(entries, joiners)
            chain = audit.verify_entries(entries)
            queued.notes.append(
                f"draw recomputed from the public record: {len(order)} window joiners, "
                f"audit chain {'ok' if chain.ok else 'BROKEN'}"
            )
        except lottery.LotteryError as exc:
            queued.notes.append(f"draw NOT verified: {exc}")

        # The plain sale: same people, same stock, a slot of another resource.
        release = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=LEAD_S + 1)
        slot_id = await bench.publish(people, code=f"f{tag}", capacity=stock, release=release)
        await warm_up()
        release_at = release.timestamp()
        results = await asyncio.gather(
            *(
                bench.fcfs_client(
                    session_of(bot), c.headers, bot, slot_id, release_at, release_at + 60
                )
                for c, bot in zip(citizens, roles, strict=True)
            )
        )
        fcfs = Outcome(
            "plain first-come-first-served sale (no waiting room):",
            stock,
            Group("bots", n_bots, sum(w for w, b in zip(results, roles, strict=True) if b)),
            Group(
                "people",
                participants - n_bots,
                sum(w for w, b in zip(results, roles, strict=True) if not b),
            ),
        )
    for outcome, sale in ((queued, "queued"), (fcfs, "fcfs")):
        for group in ("bots", "people"):
            told = bench.answers.get((sale, group), Counter())
            answers = ", ".join(f"{k} x{v}" for k, v in sorted(told.items()))
            outcome.notes.append(f"hold answers to {group}: {answers or 'none'}")
    return queued, fcfs


def run_bench_fairness(
    settings: Settings,
    *,
    participants: int = 1000,
    bot_share: float = 0.5,
    stock: int = 500,
    window_s: int = 10,
    workers: int = 2,
    seed: int | None = None,
    out: Callable[[str], None] = print,
) -> tuple[float, float]:
    """Run the bench; returns (bot_advantage, fcfs_bot_advantage)."""
    from reservation.bench import bench_backends
    from reservation.bench_http import served

    if not 0 < stock <= 10_000 or participants < 2:
        raise ValueError("stock must be 1..10,000 (one slot) and participants >= 2")
    env = {
        "FAIRSEAT_QUEUE_WINDOW_SECONDS": str(window_s),
        "FAIRSEAT_QUEUE_ADMISSION_SECONDS": "120",
    }
    with bench_backends(settings) as ready:
        ready = ready.replace(
            operator_key=ready.operator_key or "op_bench_" + secrets.token_urlsafe(12),
            workers=workers,
        )
        asyncio.run(_prepare_provider(ready))
        with served(ready, workers=workers, extra_env=env) as (url, _pid):
            n_bots = round(participants * bot_share)
            out(
                f"fairseat serve --workers {workers} at {url}; {participants} participants: "
                f"{n_bots} bots ({BOT_REACTION_MS[0]}-{BOT_REACTION_MS[1]} ms reaction, "
                f"poll/retry every {BOT_RETRY_S * 1000:.0f} ms, Retry-After ignored), "
                f"{participants - n_bots} people ({PEOPLE_REACTION_MS[0]}-"
                f"{PEOPLE_REACTION_MS[1]} ms reaction, poll every {PEOPLE_POLL_S:.0f} s); "
                f"stock {stock} places per sale; load average "
                + " ".join(f"{x:.1f}" for x in os.getloadavg())
            )
            queued, fcfs = asyncio.run(
                run_sales(
                    url,
                    ready,
                    participants=participants,
                    bot_share=bot_share,
                    stock=stock,
                    window_s=window_s,
                    seed=seed,
                    out=out,
                )
            )
    for outcome in (queued, fcfs):
        for line in outcome.table():
            out(line)
    spread = null_spread(participants, round(participants * bot_share), queued.won)
    out(
        f"sample: {participants} participants, {queued.won} places sold in the queued sale; "
        f"a draw that ignores who is a bot lands within 1 ± {spread:.3f} (95%)"
    )
    fair, plain = queued.advantage(queued.bots), fcfs.advantage(fcfs.bots)
    out(f"bot_advantage={fair:.3f} fcfs_bot_advantage={plain:.3f}")
    return fair, plain


async def _prepare_provider(settings: Settings) -> None:
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
