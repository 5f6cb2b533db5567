"""``fairseat bench seats`` in miniature: every figure is measured, not assumed."""

from __future__ import annotations

import redis

from inventory.bench_seats import bench_seats


async def test_bench_seats_measures_every_figure_and_cleans_up(redis_url: str) -> None:
    figures = await bench_seats(redis_url, seconds=0.2, concurrency=4, rounds=3)

    # Both runs were brought to about half sold before any measured hold.
    assert 0.45 <= figures["sold_fraction_2000"] <= 0.55
    assert 0.45 <= figures["sold_fraction_100"] <= 0.55
    # Measured holds are real allocations: trips drawn among those with a seat left.
    assert figures["hold_success_2000"] == 1.0
    assert figures["hold_success_100"] == 1.0
    for name in ("hold_rate_2000", "hold_rate_100", "trivial_evalsha_rate"):
        assert figures[name] > 0, name
    assert figures["flat_ratio_of_bests"] == figures["hold_rate_2000"] / figures["hold_rate_100"]
    bests = figures["seat_script_rate"] / figures["trivial_evalsha_rate"]
    assert figures["lua_ratio_of_bests"] == bests
    # The reported ratio is the median of the rounds' own: between the extremes.
    assert figures["lua_ratio_round_min"] <= figures["lua_ratio"] <= figures["lua_ratio_round_max"]
    assert figures["flat_ratio"] > 0
    # A seat script does real work on the server; `return 1` does next to none.
    assert figures["seat_script_server_us"] > figures["trivial_server_us"]
    assert figures["remaining_all_pairs_rate"] > 0

    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match="bench-*", count=1000))
    finally:
        client.close()
