"""Segment masks, gaps and 余票 arithmetic: pure, no servers."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.segments import (
    Remaining,
    borders,
    check_trip,
    containing_gap,
    empty_pattern,
    free_gaps,
    gap_counts,
    gap_rank,
    is_free,
    occupy,
    popcount,
    release,
    remaining_all,
    remaining_brute,
    remaining_from_patterns,
)

patterns = st.integers(1, 12).flatmap(
    lambda n: st.lists(st.sampled_from("01"), min_size=n, max_size=n).map("".join)
)


def test_occupy_and_release_are_inverse() -> None:
    p = occupy(empty_pattern(6), 1, 3)
    assert p == "011000"
    assert occupy(p, 3, 6) == "011111"
    assert release(p, 1, 3) == "000000"


def test_occupy_refuses_a_sold_segment_and_release_a_free_one() -> None:
    with pytest.raises(ValueError):
        occupy("011000", 2, 4)
    with pytest.raises(ValueError):
        release("011000", 0, 2)


def test_free_gaps_are_the_maximal_free_runs() -> None:
    assert free_gaps("000") == [(0, 3)]
    assert free_gaps("111") == []
    assert free_gaps("0110100") == [(0, 1), (3, 4), (5, 7)]


def test_containing_gap() -> None:
    assert containing_gap("0110000", 4, 5) == (3, 7)
    assert containing_gap("0110000", 0, 1) == (0, 1)
    assert containing_gap("0110000", 1, 4) is None


def test_borders_count_sold_neighbours_and_run_ends() -> None:
    assert borders((3, 7), 3, 7) == 2  # fills the gap
    assert borders((3, 7), 3, 5) == 1
    assert borders((0, 7), 2, 5) == 0


def test_gap_rank_prefers_borders_then_busy_seats_then_tight_gaps() -> None:
    a, b = 3, 5
    exact = gap_rank((3, 5), a, b, top_popcount=0)
    one_border_busy = gap_rank((3, 9), a, b, top_popcount=8)
    one_border_idle = gap_rank((0, 5), a, b, top_popcount=2)
    none = gap_rank((0, 9), a, b, top_popcount=0)
    assert sorted([none, one_border_idle, one_border_busy, exact]) == [
        exact,
        one_border_busy,
        one_border_idle,
        none,
    ]


def test_check_trip() -> None:
    check_trip(5, 0, 5)
    for a, b in [(2, 2), (3, 2), (-1, 2), (0, 6)]:
        with pytest.raises(ValueError):
            check_trip(5, a, b)
    with pytest.raises(ValueError):
        check_trip(64, 0, 1)


@given(patterns, st.data())
def test_containing_gap_agrees_with_is_free(pattern: str, data: st.DataObject) -> None:
    n = len(pattern)
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(a + 1, n))
    gap = containing_gap(pattern, a, b)
    assert (gap is not None) == is_free(pattern, a, b)
    if gap is not None:
        assert gap in free_gaps(pattern)
        assert gap[0] <= a and b <= gap[1]


@given(patterns)
def test_gaps_and_sold_segments_partition_the_run(pattern: str) -> None:
    assert sum(g1 - g0 for g0, g1 in free_gaps(pattern)) + popcount(pattern) == len(pattern)


@given(
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(
                st.lists(st.sampled_from("01"), min_size=n, max_size=n).map("".join), max_size=30
            ),
        )
    )
)
def test_remaining_from_gap_counts_equals_seat_by_seat(case: tuple[int, list[str]]) -> None:
    nseg, seats = case
    table = remaining_all(nseg, gap_counts(seats))
    assert table.pairs() == {
        (a, b): remaining_brute(seats, a, b) for a in range(nseg) for b in range(a + 1, nseg + 1)
    }
    # What SeatEngine.remaining reads: seats per pattern, not per seat.
    assert remaining_from_patterns(nseg, Counter(seats)) == table


def test_remaining_of_an_empty_and_of_a_full_run() -> None:
    empty = remaining_all(4, gap_counts(["0000"] * 7))
    assert set(empty.pairs().values()) == {7}
    assert len(empty.pairs()) == 4 * 5 // 2
    assert remaining_all(4, gap_counts(["1111"] * 7)).pairs() == dict.fromkeys(empty.pairs(), 0)


def test_remaining_indexing_checks_the_trip() -> None:
    table: Remaining = remaining_all(3, gap_counts(["010"]))
    assert table[0, 1] == 1 and table[1, 2] == 0 and table[0, 3] == 0
    with pytest.raises(ValueError):
        table[2, 2]
