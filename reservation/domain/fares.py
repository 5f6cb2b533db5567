"""Fares (pure). The rule, also in docs/trains.md:

    fare = max(MINIMUM_FARE, round_half_up(km × RATE[class] × KIND_FACTOR[kind], 0.5 CNY))

``km`` is the timetable distance between the boarding and alighting stations. Rates are
CNY per km for a G (high-speed) train; slower kinds are cheaper by their factor. Money is
``Decimal`` throughout: binary floats cannot hold 0.46 exactly, and a fare that differs by
a fen between two processes is a bug report.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

RATE_PER_KM: dict[str, Decimal] = {
    "business": Decimal("1.46"),
    "first": Decimal("0.74"),
    "second": Decimal("0.46"),
    "sleeper": Decimal("0.62"),
}
KIND_FACTOR: dict[str, Decimal] = {
    "G": Decimal("1.00"),
    "C": Decimal("1.00"),
    "D": Decimal("0.80"),
    "Z": Decimal("0.60"),
    "T": Decimal("0.60"),
    "K": Decimal("0.60"),
}
MINIMUM_FARE = Decimal("10.0")
STEP = Decimal("0.5")


def fare(seat_class: str, km: int, kind: str = "G") -> Decimal:
    """The fare in CNY of one ticket over ``km`` kilometres; a multiple of 0.5."""
    if km <= 0:
        raise ValueError(f"a trip covers a positive distance, not {km} km")
    try:
        raw = km * RATE_PER_KM[seat_class] * KIND_FACTOR[kind]
    except KeyError as exc:
        raise ValueError(f"no fare for class {seat_class!r} on kind {kind!r}") from exc
    halves = (raw / STEP).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(MINIMUM_FARE, halves * STEP)
