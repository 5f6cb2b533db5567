"""iso_from_ms is iso(from_ms(...)) in one conversion."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reservation.domain.clock import from_ms, iso, iso_from_ms


@given(st.integers(0, 32_503_680_000_000))  # 1970 .. 3000
def test_iso_from_ms_is_iso_of_from_ms(ms: int) -> None:
    assert iso_from_ms(ms) == iso(from_ms(ms))
