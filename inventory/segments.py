"""Segment masks, free gaps and 余票 (remaining tickets): pure helpers shared by the model,
the engine and the tests.

A run with ``n`` stops has ``nseg = n - 1`` segments; segment ``i`` runs from stop ``i`` to
stop ``i + 1``, and a trip ``[a, b)`` boards at stop ``a`` and alights at stop ``b``. A seat's
occupancy is its *pattern*: a string of ``nseg`` characters, ``"1"`` where that segment is
sold. A string and not an integer because Lua numbers are doubles and its ``bit`` library
works on 32 bits, while a run may have up to 63 segments: a fixed-width string is exact,
readable in redis-cli, and Lua tests it with ``string.find`` in C.

A *gap* ``(g0, g1)`` is a maximal run of free segments ``[g0, g1)`` of a pattern. A trip fits
a seat iff one of the seat's gaps contains it, and at most one can. So the seats free for
``[a, b)`` are those with a gap ``g0 <= a, g1 >= b``, and 余票 for every pair follows from the
number of seats per gap by a 2-D suffix sum: O(nseg²) however many seats the run has.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from operator import add

MAX_SEGMENTS = 63  # gap indices are written with two digits; 64 stops is plenty for a train


def check_trip(nseg: int, a: int, b: int) -> None:
    if not 1 <= nseg <= MAX_SEGMENTS:
        raise ValueError(f"a run has 1..{MAX_SEGMENTS} segments, not {nseg}")
    if not 0 <= a < b <= nseg:
        raise ValueError(f"trip [{a}, {b}) is not within 0..{nseg} or is empty")


def empty_pattern(nseg: int) -> str:
    return "0" * nseg


def is_free(pattern: str, a: int, b: int) -> bool:
    return "1" not in pattern[a:b]


def occupy(pattern: str, a: int, b: int) -> str:
    if not is_free(pattern, a, b):
        raise ValueError(f"segments [{a}, {b}) of {pattern} are not all free")
    return pattern[:a] + "1" * (b - a) + pattern[b:]


def release(pattern: str, a: int, b: int) -> str:
    if "0" in pattern[a:b]:
        raise ValueError(f"segments [{a}, {b}) of {pattern} are not all sold")
    return pattern[:a] + "0" * (b - a) + pattern[b:]


def popcount(pattern: str) -> int:
    return pattern.count("1")


def free_gaps(pattern: str) -> list[tuple[int, int]]:
    """The maximal free runs ``[g0, g1)`` of a pattern, left to right."""
    gaps: list[tuple[int, int]] = []
    start: int | None = None
    for i, ch in enumerate(pattern):
        if ch == "0" and start is None:
            start = i
        elif ch == "1" and start is not None:
            gaps.append((start, i))
            start = None
    if start is not None:
        gaps.append((start, len(pattern)))
    return gaps


def containing_gap(pattern: str, a: int, b: int) -> tuple[int, int] | None:
    """The free gap of ``pattern`` that contains ``[a, b)``, if the trip fits."""
    if not is_free(pattern, a, b):
        return None
    g0, g1 = a, b
    while g0 > 0 and pattern[g0 - 1] == "0":
        g0 -= 1
    while g1 < len(pattern) and pattern[g1] == "0":
        g1 += 1
    return g0, g1


def borders(gap: tuple[int, int], a: int, b: int) -> int:
    """How many ends of the trip touch the end of its gap (a sold segment or the end of the
    run): 2 = the trip fills the gap exactly, nothing is left over to fragment."""
    return (gap[0] == a) + (gap[1] == b)


def gap_rank(gap: tuple[int, int], a: int, b: int, top_popcount: int) -> tuple[int, int, int, int]:
    """Sort key of a candidate gap for trip ``[a, b)``, best first: most borders, then the
    busiest seat (most sold segments: keeps empty seats for long trips), then the tightest
    gap, then the lowest start. The Lua allocator ranks candidates exactly so."""
    return (-borders(gap, a, b), -top_popcount, gap[1] - gap[0], gap[0])


def gap_counts(patterns: Iterable[str]) -> Counter[tuple[int, int]]:
    """Seats per free gap, for a collection of seat patterns."""
    counts: Counter[tuple[int, int]] = Counter()
    for pattern in patterns:
        counts.update(free_gaps(pattern))
    return counts


@dataclass(frozen=True, slots=True)
class Remaining:
    """余票 of one (run, class) for every trip: ``remaining[a, b]`` seats are free on all of
    the segments ``[a, b)``."""

    nseg: int
    table: tuple[tuple[int, ...], ...]  # table[a][b], meaningful for a < b

    def __getitem__(self, trip: tuple[int, int]) -> int:
        a, b = trip
        check_trip(self.nseg, a, b)
        return self.table[a][b]

    def pairs(self) -> dict[tuple[int, int], int]:
        n = self.nseg
        return {(a, b): self.table[a][b] for a in range(n) for b in range(a + 1, n + 1)}


def remaining_all(nseg: int, counts: Mapping[tuple[int, int], int]) -> Remaining:
    """余票 for every trip from the seats-per-gap counts.

    ``R[a][b] = sum of counts[g0, g1] over g0 <= a and g1 >= b``: a seat is free for
    ``[a, b)`` iff its one containing gap dominates the trip. Computed as a running sum
    along ``g1`` plus the row above: O(nseg²).
    """
    width = nseg + 1
    cells = [0] * (width * width)
    for (g0, g1), count in counts.items():
        cells[g0 * width + g1] += count
    return _suffix_sums(nseg, cells)


@functools.lru_cache(maxsize=1 << 16)
def _gap_cells(pattern: str) -> tuple[int, ...]:
    # A run's patterns repeat from query to query: each is parsed once per process.
    width = len(pattern) + 1
    return tuple(g0 * width + g1 for g0, g1 in free_gaps(pattern))


def remaining_from_patterns(nseg: int, pattern_counts: Mapping[str, int]) -> Remaining:
    """余票 for every trip from the seats per occupancy pattern (a unit's ``pcount``, the
    allocator's buckets): each pattern's seats count once under each of its free gaps,
    then as :func:`remaining_all`. Every pattern must be ``nseg`` long."""
    width = nseg + 1
    cells = [0] * (width * width)
    for pattern, seats in pattern_counts.items():
        for cell in _gap_cells(pattern):
            cells[cell] += seats
    return _suffix_sums(nseg, cells)


def _suffix_sums(nseg: int, cells: list[int]) -> Remaining:
    # cells[g0 * (nseg + 1) + g1]: seats whose free gap is [g0, g1).
    width = nseg + 1
    rows: list[tuple[int, ...]] = []
    above: tuple[int, ...] = (0,) * width
    for g0 in range(width):
        line = cells[g0 * width : (g0 + 1) * width]
        from_b = list(accumulate(reversed(line)))[::-1]  # sum over g1 >= b of this row
        above = tuple(map(add, from_b, above))
        rows.append(above)
    return Remaining(nseg, tuple(rows))


def remaining_brute(patterns: Iterable[str], a: int, b: int) -> int:
    """The definition of 余票, seat by seat: the reference the fast path is tested against."""
    return sum(1 for pattern in patterns if is_free(pattern, a, b))
