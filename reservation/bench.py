"""``fairseat bench …``: throughput ratios measured in one run on one machine.

Absolute rates on a shared machine are noise; a ratio against a baseline measured in the
same run, with the same client setup, is not. Each phase runs ``rounds`` times,
interleaved (baseline, subject, baseline, subject…), and the best round of each counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from inventory.epoch import EpochGuard, EpochState
from inventory.keys import Keys
from inventory.script_client import ScriptClient
from inventory.slot_engine import SlotEngine, SlotSpec, hold_id_for, new_slot_id
from reservation.settings import Settings

Op = Callable[[int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Rate:
    ops: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


async def measure(op: Op, *, seconds: float, concurrency: int) -> Rate:
    """Run ``op(i)`` from ``concurrency`` tasks for ``seconds``; count completions."""
    counter = iter(range(1 << 62))
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await op(next(counter))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Rate(done, time.perf_counter() - started)


async def best_of(op: Op, rounds: int, **kw: Any) -> Rate:
    best = Rate(0, 1.0)
    for _ in range(rounds):
        r = await measure(op, **kw)
        if r.per_second > best.per_second:
            best = r
    return best


@contextlib.contextmanager
def bench_backends(settings: Settings) -> Iterator[Settings]:
    """Configured servers, or throwaway embedded ones in a temporary folder."""
    from reservation.runtime.procutil import throwaway_dir
    from reservation.runtime.serve import backends

    with throwaway_dir("fairseat-bench-") as tmp:
        base = settings.replace(
            data_dir=tmp,
            key_prefix=f"bench{secrets.token_hex(3)}",
            secret_key=settings.secret_key or "bench",
            id_hmac_key=settings.id_hmac_key or "bench",
        )
        with backends(base, fsync=False) as ready:
            yield ready


async def _slot_rates(
    settings: Settings, *, pipelining: bool, seconds: float, concurrency: int, rounds: int
) -> tuple[Rate, Rate]:
    """(trivial EVALSHA, slot hold) rates through one client setup."""
    from reservation.services import redis_client

    client = redis_client(settings, max_connections=concurrency)
    keys = Keys(prefix=settings.key_prefix, shard_count=settings.shard_count)
    calls = ScriptClient(client, pipelining=pipelining)
    # Guarded, as the service runs: every hold also checks its shard's epoch marker.
    epoch = EpochState(1, True)

    async def current_epoch() -> EpochState:
        return epoch

    engine = SlotEngine(client, keys, calls=calls, guard=EpochGuard(current_epoch))
    try:
        async with client.pipeline(transaction=False) as pipe:
            for shard in range(keys.shard_count):
                pipe.set(keys.epoch(shard), epoch.expected)
            await pipe.execute()
        now = int(time.time() * 1000)
        # Many resources (so many shards) with room for every hold we can make.
        specs = [
            SlotSpec(
                slot_id=new_slot_id(keys, f"bench-res-{i}"),
                resource_id=f"bench-res-{i}",
                day="2030-01-01",
                capacity=10_000_000,
                release_ms=0,
                ends_ms=now + 86_400_000,
                retain_until_ms=now + 3_600_000,
            )
            for i in range(64)
        ]
        await engine.publish(specs)
        for spec in specs:
            await engine.slot_meta(spec.slot_id)  # warm the cache, as a live process has
        run = secrets.token_hex(4)

        async def trivial(i: int) -> object:
            await engine.ping()
            return None

        async def hold(i: int) -> object:
            spec = specs[i % len(specs)]
            return await engine.hold(
                slot_id=spec.slot_id,
                hold_id=hold_id_for(spec.slot_id, f"{run}{i:016x}"),
                account_id=f"b{run}{i}",
                person=f"p{run}{i}",
                idempotency_key=str(i),
                now_ms=now,
                deadline_ms=now + 600_000,
            )

        await measure(trivial, seconds=min(1.0, seconds), concurrency=concurrency)  # warm-up
        base = subject = Rate(0, 1.0)
        for _ in range(rounds):
            b = await measure(trivial, seconds=seconds, concurrency=concurrency)
            s = await measure(hold, seconds=seconds, concurrency=concurrency)
            base = b if b.per_second > base.per_second else base
            subject = s if s.per_second > subject.per_second else subject
        return base, subject
    finally:
        await calls.aclose()
        await client.aclose(close_connection_pool=True)


async def bench_slots(
    settings: Settings,
    *,
    seconds: float,
    concurrency: int,
    rounds: int = 3,
    out: Callable[[str], None] = print,
) -> float:
    """Slot-hold rate through the Lua engine ÷ a trivial EVALSHA's rate, same client.

    Two client setups are measured. The generic one (redis-py, a connection per call in
    flight) is what the ratio is defined on: per-call client overhead is equal on both
    sides, so the ratio shows what the engine adds. The pipelining one is what the service
    runs: far faster on both sides, so there the hold is bounded by Redis executing the
    script itself, which a no-op script does not pay; its ratio is printed for reference.
    """
    lean_base, lean_hold = await _slot_rates(
        settings, pipelining=True, seconds=seconds, concurrency=concurrency, rounds=rounds
    )
    base, hold = await _slot_rates(
        settings, pipelining=False, seconds=seconds, concurrency=concurrency, rounds=rounds
    )
    out(
        f"pipelining client (the service's): trivial EVALSHA {lean_base.per_second:,.0f}/s, "
        f"slot hold {lean_hold.per_second:,.0f}/s, "
        f"ratio {lean_hold.per_second / lean_base.per_second:.3f}"
    )
    out(
        f"redis-py client: trivial EVALSHA {base.per_second:,.0f}/s, "
        f"slot hold {hold.per_second:,.0f}/s"
    )
    out(f"concurrency={concurrency} seconds={seconds} rounds={rounds} (best round of each)")
    ratio = hold.per_second / base.per_second
    out(f"ratio={ratio:.3f}")
    return ratio


def run_bench(what: str, settings: Settings, *, seconds: float, concurrency: int) -> int:
    import uvloop

    with bench_backends(settings) as ready:
        if what == "slots":
            uvloop.run(bench_slots(ready, seconds=seconds, concurrency=concurrency))
        elif what == "seats":
            assert ready.redis_url is not None
            from inventory.bench_seats import bench_seats

            # --seconds is each phase's total: 9 interleaved rounds share it (a ratio is
            # the median of the rounds' own ratios; see inventory.bench_seats).
            figures = uvloop.run(
                bench_seats(ready.redis_url, seconds=seconds / 9, concurrency=concurrency, rounds=9)
            )
            for name, value in figures.items():
                if name not in ("flat_ratio", "lua_ratio"):
                    print(f"{name}: {value:,.3f}")
            print(f"flat_ratio={figures['flat_ratio']:.3f} lua_ratio={figures['lua_ratio']:.3f}")
        else:  # pragma: no cover - argparse restricts the choices
            raise ValueError(what)
    return 0
