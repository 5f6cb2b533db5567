"""``BenchHold``, the operation ``fairseat bench http`` measures holds with: every operation
books a new (citizen, slot) pair, and a run of operations spreads over the slots, so the
measured hold rate is the service's, not a slot's capacity running out."""

from __future__ import annotations

from collections import Counter

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from loadtest.scenarios import BenchHold, Citizen
from reservation.bench_http import BLOCK, CITIZENS, RESOURCES


@given(st.integers(1, 60), st.integers(1, 40), st.integers(0, 10_000))
def test_the_first_citizens_times_slots_operations_are_distinct_pairs(
    citizens: int, slots: int, offset: int
) -> None:
    pairs = [BenchHold.pair(n, citizens, slots) for n in range(citizens * slots)]
    assert len(set(pairs)) == citizens * slots
    shifted = [BenchHold.pair(offset + n, citizens, slots) for n in range(citizens)]
    assert [c for c, _ in shifted] == [(offset + n) % citizens for n in range(citizens)]


@given(st.integers(2, 60), st.integers(1, 40), st.integers(0, 10_000), st.integers(1, 500))
def test_a_run_of_operations_spreads_over_the_slots(
    citizens: int, slots: int, offset: int, length: int
) -> None:
    per_slot = Counter(BenchHold.pair(offset + n, citizens, slots)[1] for n in range(length))
    # One pass over the citizens moves through the slots in turn; a run crosses at most
    # length // citizens + 1 such passes, each adding at most one extra hold per slot.
    assert max(per_slot.values()) <= length // slots + length // citizens + 2


def test_the_bench_never_runs_a_slot_dry_or_books_a_pair_twice() -> None:
    """The bench's own sizes: 12 blocks of 30,000 holds (a 3-s round at 10,000/s) stay far
    below a slot's 10,000 places and never repeat a pair. (Before, a round's holds all
    fell on one slot, and after 10,000 of them the rest were sold-out 409s.)"""
    per_slot: Counter[int] = Counter()
    pairs: set[tuple[int, int]] = set()
    for block in range(12):
        for i in range(30_000):
            pair = BenchHold.pair(block * BLOCK + i, CITIZENS, RESOURCES)
            per_slot[pair[1]] += 1
            pairs.add(pair)
    assert len(pairs) == 12 * 30_000
    assert max(per_slot.values()) < 2_000


@pytest.fixture
async def small_slots() -> tuple[TestServer, Counter[str]]:
    """A stand-in service: slots of 8 places; a ninth hold on a slot is sold out."""
    booked: Counter[str] = Counter()
    people: set[tuple[str, str]] = set()

    async def hold(request: web.Request) -> web.Response:
        slot = (await request.json())["slot_id"]
        person = request.headers["Authorization"]
        if booked[slot] >= 8 or (person, slot) in people:
            return web.json_response({"code": "sold_out"}, status=409)
        booked[slot] += 1
        people.add((person, slot))
        return web.json_response({"id": f"h-{slot}-{booked[slot]}"}, status=201)

    app = web.Application()
    app.router.add_post("/v1/bookings", hold)
    return TestServer(app), booked


async def test_thirty_holds_by_twenty_citizens_fit_in_four_slots_of_eight(
    small_slots: tuple[TestServer, Counter[str]],
) -> None:
    """Slot by citizen pass (the old order) would put the first 20 holds on one slot and
    get 12 sold-out answers."""
    server, booked = small_slots
    await server.start_server()
    try:
        citizens = [Citizen(account_id=f"a{i}", token=f"t{i}") for i in range(20)]
        op = BenchHold(str(server.make_url("")), citizens, ["s0", "s1", "s2", "s3"])
        async with aiohttp.ClientSession() as session:
            statuses = [await op(session, i) for i in range(30)]
    finally:
        await server.close()
    assert statuses == [201] * 30
    assert booked == {"s0": 7, "s1": 8, "s2": 8, "s3": 7}
