"""Benchmark of the seat inventory on one Redis: ``fairseat bench seats`` calls
:func:`bench_seats`; ``python -m inventory.bench_seats redis://...`` runs it alone.

What it measures, in one process with one client and ``concurrency`` tasks:
- hold rate on a 2,000-seat and on a 100-seat run (30 stops), each first brought to about
  half sold by random origin-destination holds, so both are fragmented. Every measured hold
  is cancelled again right away (hold -> cancel cycles keep the run at half); trips are
  drawn among those with a seat left, so both runs allocate rather than refuse cheaply.
  ``flat_ratio = hold_rate_2000 / hold_rate_100`` shows whether cost grows with seats;
- ``lua_ratio``: seat script calls per second (the holds and their cancels) over plain
  ``return 1`` EVALSHA calls per second, same client and concurrency: how much the
  scripts cost beyond a round trip. Phases are interleaved over many short rounds and
  each ratio is the median of its rounds' own ratios (see :func:`bench_seats`);
- the all-pairs 余票 query rate on the 2,000-seat run (435 trips per query).
Server-side microseconds per script call come from INFO commandstats deltas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from inventory.errors import InventoryError
from inventory.fast_connection import HiredisPackConnection
from inventory.keys import Keys
from inventory.seat_engine import SeatEngine
from inventory.seat_model import SeatSpec

NSEG = 29  # 30 stops
CLASS = "second"


def second_class_coaches(seats: int) -> list[SeatSpec]:
    """``seats`` second-class seats, 5 a row (A B C D F), 100 a coach."""
    letters = "ABCDF"
    return [SeatSpec(f"{i // 100 + 1:02d}", i % 100 // 5 + 1, letters[i % 5]) for i in range(seats)]


def _trip(rnd: random.Random) -> tuple[int, int]:
    a, b = sorted(rnd.sample(range(NSEG + 1), 2))
    return a, b


async def _run_for(
    seconds: float, concurrency: int, op: Callable[[random.Random, int], Awaitable[None]]
) -> tuple[int, float]:
    """Run ``op`` in ``concurrency`` tasks for ``seconds``; calls made and time taken."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    calls = 0

    async def worker(w: int) -> None:
        nonlocal calls
        rnd = random.Random(w)
        while loop.time() < stop:
            await op(rnd, w)
            calls += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return calls, time.perf_counter() - started


async def _script_stats(client: Redis) -> tuple[int, int]:
    """(calls, microseconds) of EVALSHA so far, from INFO commandstats."""
    stats = await client.info("commandstats")
    entry = stats.get("cmdstat_evalsha", {})
    return int(entry.get("calls", 0)), int(entry.get("usec", 0))


class _Bench:
    def __init__(self, client: Redis, engine: SeatEngine, concurrency: int) -> None:
        self.client = client
        self.engine = engine
        self.concurrency = concurrency
        self.serial = 0

    def _ids(self, w: int) -> tuple[str, str]:
        self.serial += 1
        return f"p{w}-{self.serial}", f"k{w}-{self.serial}"

    async def fill_half(self, run: str, seats: int) -> float:
        """Random solo holds until half the seat-segments are sold; the sold fraction."""
        await self.engine.publish(run, CLASS, NSEG, second_class_coaches(seats))
        target = seats * NSEG // 2
        sold, misses = 0, 0

        async def worker(w: int) -> None:
            nonlocal sold, misses
            rnd = random.Random(10_000 + w)
            while sold < target and misses < 50 * seats:
                a, b = _trip(rnd)
                if sold + (b - a) > target + NSEG // 2:
                    continue
                sold += b - a  # reserved before the await, so tasks do not overshoot
                pax, key = self._ids(w)
                try:
                    await self.engine.hold("fill", run, CLASS, a, b, [pax], idempotency_key=key)
                except InventoryError:
                    sold -= b - a
                    misses += 1

        await asyncio.gather(*(worker(w) for w in range(min(self.concurrency, 8))))
        return sold / (seats * NSEG)

    async def hold_cycles(self, run: str, seconds: float) -> dict[str, float]:
        """Hold a random trip, cancel it again: holds/s, scripts/s, success, server µs.
        Trips are drawn among those with a seat left (one 余票 query first), so on both runs
        every cycle is a real allocation, not a cheap refusal."""
        left = await self.engine.remaining(run, CLASS)
        trips = [trip for trip, count in left.pairs().items() if count > 0]
        holds = scripts = ok = 0

        async def cycle(rnd: random.Random, w: int) -> None:
            nonlocal holds, scripts, ok
            a, b = rnd.choice(trips)
            pax, key = self._ids(w)
            holds += 1
            scripts += 1
            try:
                held = await self.engine.hold("bench", run, CLASS, a, b, [pax], idempotency_key=key)
            except InventoryError:
                return
            ok += 1
            scripts += 1
            await self.engine.cancel("bench", held.hold_id, where=(run, CLASS))

        calls0, usec0 = await _script_stats(self.client)
        _, elapsed = await _run_for(seconds, self.concurrency, cycle)
        calls1, usec1 = await _script_stats(self.client)
        return {
            "hold_rate": holds / elapsed,
            "script_rate": scripts / elapsed,
            "hold_success": ok / max(holds, 1),
            "trips_with_seats": len(trips) / left.nseg / (left.nseg + 1) * 2,
            "server_us": (usec1 - usec0) / max(calls1 - calls0, 1),
        }

    async def trivial(self, seconds: float) -> dict[str, float]:
        script = self.client.register_script("return 1")
        key = self.engine.unit("BENCH-2000", CLASS).meta  # a key, as a real script has

        async def call(rnd: random.Random, w: int) -> None:
            await script(keys=[key])

        calls0, usec0 = await _script_stats(self.client)
        calls, elapsed = await _run_for(seconds, self.concurrency, call)
        calls1, usec1 = await _script_stats(self.client)
        return {"rate": calls / elapsed, "server_us": (usec1 - usec0) / max(calls1 - calls0, 1)}

    async def remaining(self, run: str, seconds: float) -> float:
        async def query(rnd: random.Random, w: int) -> None:
            await self.engine.remaining(run, CLASS)

        calls, elapsed = await _run_for(seconds, self.concurrency, query)
        return calls / elapsed


async def bench_seats(
    redis_url: str, *, seconds: float = 1.0, concurrency: int = 64, rounds: int = 9
) -> dict[str, float]:
    """Measure the seat inventory on the Redis at ``redis_url`` (see the module doc). Uses
    keys under a fresh prefix and deletes them afterwards.

    The phases run ``rounds`` times, interleaved (trivial, 2,000 seats, 100 seats), each
    for ``seconds``. A ratio is taken within each round, between phases seconds apart, and
    the reported ratio is the median of the rounds': on a shared machine the speed of both
    cores drifts from second to second (the same `return 1` loop's client CPU per call
    varied by ±15 % between neighbouring seconds), so a ratio of two phases measured at
    different moments is mostly noise, and so is a ratio of each phase's best round. The
    rates reported are each phase's best round; the ratio of those bests is reported too
    (``*_of_bests``)."""
    client = Redis.from_url(
        redis_url, decode_responses=True, connection_class=HiredisPackConnection
    )
    keys = Keys(prefix=f"bench-{secrets.token_hex(4)}")
    # Finished holds and replay records expire soon: the bench leaves nothing for long.
    # The engine's default: redis-py's own call path, as the trivial script's (the same
    # client setup for both rates; no pipelining client).
    engine = SeatEngine(client, keys, keep_ms=600_000)
    bench = _Bench(client, engine, concurrency)
    trivial: list[dict[str, float]] = []
    big: list[dict[str, float]] = []
    small: list[dict[str, float]] = []
    try:
        sold_2000 = await bench.fill_half("BENCH-2000", 2000)
        sold_100 = await bench.fill_half("BENCH-100", 100)
        await bench.trivial(min(0.5, seconds))  # warm the connection pool
        for _ in range(max(1, rounds)):
            trivial.append(await bench.trivial(seconds))
            big.append(await bench.hold_cycles("BENCH-2000", seconds))
            small.append(await bench.hold_cycles("BENCH-100", seconds))
        remaining = await bench.remaining("BENCH-2000", seconds)
    finally:
        async for key in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
            await client.unlink(key)
        await client.aclose()
    best_trivial = max(trivial, key=lambda r: r["rate"])
    best_big = max(big, key=lambda r: r["hold_rate"])
    best_small = max(small, key=lambda r: r["hold_rate"])
    per_round = [b["script_rate"] / t["rate"] for t, b in zip(trivial, big, strict=True)]
    flat_rounds = [b["hold_rate"] / s["hold_rate"] for b, s in zip(big, small, strict=True)]
    return {
        "hold_rate_2000": best_big["hold_rate"],
        "hold_rate_100": best_small["hold_rate"],
        "flat_ratio": statistics.median(flat_rounds),
        "flat_ratio_of_bests": best_big["hold_rate"] / best_small["hold_rate"],
        "hold_success_2000": best_big["hold_success"],
        "hold_success_100": best_small["hold_success"],
        "trips_with_seats_2000": best_big["trips_with_seats"],
        "trips_with_seats_100": best_small["trips_with_seats"],
        "sold_fraction_2000": sold_2000,
        "sold_fraction_100": sold_100,
        "seat_script_rate": best_big["script_rate"],
        "trivial_evalsha_rate": best_trivial["rate"],
        "lua_ratio": statistics.median(per_round),
        "lua_ratio_of_bests": best_big["script_rate"] / best_trivial["rate"],
        "lua_ratio_round_min": min(per_round),
        "lua_ratio_round_max": max(per_round),
        "seat_script_server_us": best_big["server_us"],
        "seat_script_server_us_100": best_small["server_us"],
        "trivial_server_us": best_trivial["server_us"],
        "remaining_all_pairs_rate": remaining,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the seat inventory on one Redis.")
    parser.add_argument("redis_url")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    result: dict[str, Any] = asyncio.run(
        bench_seats(args.redis_url, seconds=args.seconds, concurrency=args.concurrency)
    )
    print(json.dumps({k: round(v, 3) for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
