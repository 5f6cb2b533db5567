"""The load generator without a service: histogram percentiles, the open-loop schedule
(intended times kept however slow the server is), closed-loop counts, process merging."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loadtest.generator import (
    BUCKETS,
    Histogram,
    LoadSpec,
    Result,
    bucket_bounds,
    bucket_of,
    closed_loop,
    intended_times,
    new_session,
    open_loop,
    run,
)


def nearest_rank(values: list[int], p: float) -> int:
    ordered = sorted(values)
    k = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(k) - 1]


def test_percentiles_are_exact_below_128() -> None:
    h = Histogram()
    values = list(range(1, 101))  # 1..100 µs
    random.Random(1).shuffle(values)
    for v in values:
        h.record(v)
    assert (h.percentile(50), h.percentile(90), h.percentile(99)) == (50, 90, 99)
    assert h.percentile(99.9) == 100 == h.max
    assert h.min == 1 and h.total == 100 and h.mean == 50.5


def test_percentiles_on_skewed_known_data() -> None:
    h = Histogram()
    values = [7] * 990 + [120] * 9 + [1]
    for v in values:
        h.record(v)
    for p in (1, 50, 99, 99.1, 99.9, 100):
        assert h.percentile(p) == nearest_rank(values, p)


def test_large_values_keep_their_relative_error() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(8, 2)) for _ in range(20_000)]
    h = Histogram()
    for v in values:
        h.record(v)
    for p in (50, 90, 99, 99.9):
        exact = nearest_rank(values, p)
        got = h.percentile(p)
        assert exact <= got <= exact * (1 + 1 / 64) + 1, (p, exact, got)


def test_buckets_tile_the_integers() -> None:
    previous_high = -1
    for i in range(BUCKETS - 1):
        low, high = bucket_bounds(i)
        assert low == previous_high + 1
        assert bucket_of(low) == i == bucket_of(high)
        previous_high = high


def test_merge_and_state_round_trip() -> None:
    a, b = Histogram(), Histogram()
    for v in (5, 500, 50_000):
        a.record(v)
    for v in (1, 2_000_000):
        b.record(v)
    merged = Histogram.from_state(a.to_state())
    merged.merge(b)
    assert merged.total == 5 and merged.min == 1 and merged.max == 2_000_000
    assert 500 <= merged.percentile(50) <= 503 and merged.percentile(20) == 1


def test_intended_times_are_a_fixed_grid() -> None:
    assert intended_times(1_000, 4.0, 4) == [1_000, 250_001_000, 500_001_000, 750_001_000]


class FakeClock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    async def sleep(self, seconds: float) -> None:
        self.ns += max(int(seconds * 1e9), 1)
        await asyncio.sleep(0)


async def test_open_loop_measures_from_the_intended_time_when_the_server_stalls() -> None:
    """100/s for 1 s; the server stalls on the first request for 0.9 s. The scheduler does
    not wait for it: every request still leaves on its 10 ms grid (by the next tick), none
    is dropped, and the stalled one's latency counts from its intended time."""
    clock = FakeClock()
    sent_at: list[int] = []
    release = asyncio.Event()

    async def op(session: aiohttp.ClientSession, i: int) -> int:
        sent_at.append(clock())
        if i == 0:
            await release.wait()  # the server stalls on the first request
            return 503
        return 200

    async def stall_then_release() -> None:
        while clock() < 900_000_000:
            await asyncio.sleep(0)
        release.set()

    releaser = asyncio.create_task(stall_then_release())
    result = await open_loop(
        op,
        rate=100,
        seconds=1.0,
        session=None,  # type: ignore[arg-type]
        clock=clock,
        sleep=clock.sleep,
    )
    await releaser
    assert len(sent_at) == 100 and result.dropped == 0
    # Each request left at its slot on the 10 ms grid or by the next tick, in order.
    for k, t in enumerate(sent_at):
        assert k * 10_000_000 <= t <= (k + 1) * 10_000_000
    assert result.count(200) == 99 and result.count(503) == 1
    # The stalled one counts from its intended time 0: at least 0.9 s.
    assert result.histogram.max >= 900_000
    assert result.target_rate == 100


async def test_open_loop_drops_rather_than_slows_when_too_much_is_outstanding() -> None:
    clock = FakeClock()
    never = asyncio.Event()

    async def op(session: aiohttp.ClientSession, i: int) -> int:
        await never.wait()
        return 200  # pragma: no cover

    result = await open_loop(
        op,
        rate=50,
        seconds=1.0,
        session=None,  # type: ignore[arg-type]
        max_outstanding=10,
        grace=0.01,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.dropped == 40 and result.unfinished == 10 and result.completed == 0
    assert result.errors == 50


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418)

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/teapot", teapot)
    srv = TestServer(app)
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


async def test_closed_loop_counts_every_request(server: TestServer) -> None:
    calls: list[int] = []
    url = str(server.make_url(""))

    async def op(session: aiohttp.ClientSession, i: int) -> int:
        calls.append(i)
        path = "/teapot" if i % 10 == 0 else "/ok"
        async with session.get(url.rstrip("/") + path) as resp:
            await resp.read()
            return resp.status

    async with new_session(4) as session:
        result = await closed_loop(op, concurrency=4, seconds=0.5, session=session)
    assert result.completed == len(calls) > 20
    assert sorted(calls) == list(range(len(calls)))  # every number once
    assert result.count(200) + result.count(418) == result.completed
    assert result.count(418) == sum(1 for i in calls if i % 10 == 0)
    assert result.errors == result.count(418)
    assert 0 < result.histogram.percentile(50) <= result.histogram.max


async def test_exceptions_are_counted_by_class() -> None:
    async def op(session: aiohttp.ClientSession, i: int) -> int:
        await asyncio.sleep(0.001)
        raise ConnectionResetError

    result = await closed_loop(
        op,
        concurrency=2,
        seconds=0.05,
        session=None,  # type: ignore[arg-type]
    )
    assert result.statuses.keys() == {"ConnectionResetError"}
    assert result.errors == result.completed > 0


def test_processes_merge_their_results() -> None:
    async def op(session: aiohttp.ClientSession, i: int) -> int:
        await asyncio.sleep(0.001)
        return 200 if i % 2 else 201

    spec = LoadSpec(seconds=0.3, concurrency=4, processes=2)
    result = run(op, spec)
    assert result.completed == result.count(200, 201) > 0
    # Process 0 takes even numbers, process 1 odd ones: both statuses appear.
    assert result.count(200) > 0 and result.count(201) > 0
    assert isinstance(result, Result) and "closed loop" in result.summary()


def test_the_bench_last_line_has_the_agreed_shape() -> None:
    from reservation.bench_http import Figures

    figures = Figures(
        trivial_per_s=10_000,
        hold_per_s=4_500,
        p50_ms=3.2,
        p99_ms=12.345,
        confirmed_per_s=2_500.4,
        invariants_ok=True,
    )
    assert figures.last_line() == "ratio=0.450 p99_ms=12.35 confirmed_per_s=2500"


async def test_slot_rush_retries_429_and_503_with_the_same_key() -> None:
    from loadtest.scenarios import Citizen, SlotRushOp

    seen: list[tuple[str, str | None]] = []
    answers = {"hold": [503, 201], "confirm": [429, 200]}

    async def hold(request: web.Request) -> web.Response:
        seen.append(("hold", request.headers.get("Idempotency-Key")))
        status = answers["hold"].pop(0)
        if status == 503:
            return web.json_response(
                {"code": "overloaded"}, status=503, headers={"Retry-After": "0"}
            )
        return web.json_response({"id": "h1-00aa", "state": "held"}, status=201)

    async def confirm(request: web.Request) -> web.Response:
        seen.append(("confirm", request.match_info["booking_id"]))
        status = answers["confirm"].pop(0)
        if status == 429:
            return web.json_response({"code": "rate"}, status=429, headers={"Retry-After": "0"})
        return web.json_response({"state": "confirmed"})

    app = web.Application()
    app.router.add_post("/v1/bookings", hold)
    app.router.add_post("/v1/bookings/{booking_id}/confirm", confirm)
    srv = TestServer(app)
    await srv.start_server()
    try:
        op = SlotRushOp(str(srv.make_url("")).rstrip("/"), [Citizen("a1", "ct.x")], ["s1-00aa"])
        async with new_session(2) as session:
            assert await op(session, 7) == 200
    finally:
        await srv.close()
    [(_, first_key), (_, second_key)] = [s for s in seen if s[0] == "hold"]
    assert first_key == second_key is not None  # the retry is the same request
    assert [s for s in seen if s[0] == "confirm"] == [("confirm", "h1-00aa")] * 2
    assert op.confirmed == ["h1-00aa"]


async def test_the_raw_client_speaks_enough_http() -> None:
    from loadtest.generator import RawSession

    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {"got": body, "key": request.headers.get("Idempotency-Key"), "q": request.query_string},
            status=201,
            headers={"Retry-After": "3"},
        )

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/empty", empty)
    srv = TestServer(app)
    await srv.start_server()
    url = str(srv.make_url("")).rstrip("/")
    try:
        async with RawSession(2) as session:
            for n in range(5):  # the same two connections, kept alive
                async with session.post(
                    url + "/echo?x=1", json={"n": n}, headers={"Idempotency-Key": f"k{n}"}
                ) as resp:
                    assert resp.status == 201 and resp.headers["retry-after"] == "3"
                    assert await resp.json() == {"got": {"n": n}, "key": f"k{n}", "q": "x=1"}
            async with session.get(url + "/empty") as resp:
                assert resp.status == 204 and await resp.read() == b""
            result = await closed_loop(
                lambda s, i: _get_status(s, url + "/empty"),
                concurrency=4,
                seconds=0.2,
                session=session,  # type: ignore[arg-type]
            )
            assert result.completed == result.count(204) > 0
            assert len(session._all) <= 2
    finally:
        await srv.close()


async def _get_status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status


def test_the_raw_client_on_uvloop() -> None:
    """uvloop's transports are not ``asyncio.Transport`` subclasses: the raw client must
    not care (the service and ``fairseat load`` run on uvloop)."""
    import uvloop

    from loadtest.generator import RawSession

    async def main() -> int:
        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/ok", ok)
        srv = TestServer(app)
        await srv.start_server()
        try:
            async with RawSession(2) as session:
                result = await closed_loop(
                    lambda s, i: _get_status(s, str(srv.make_url("/ok"))),
                    concurrency=2,
                    seconds=0.2,
                    session=session,  # type: ignore[arg-type]
                )
        finally:
            await srv.close()
        return result.count(200) if result.completed == result.count(200) else -1

    assert uvloop.run(main()) > 0
