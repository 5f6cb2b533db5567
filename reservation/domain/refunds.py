"""Refund fees of paid train tickets (pure; no I/O). Money is integer fen (1/100 yuan).

The schedule is data: tiers ordered from the longest lead time (time left before the
train departs from the passenger's boarding station) to the shortest; the first tier whose
``min_lead`` the lead time reaches applies. Defaults (12306):

=====================  ====  ==========================
lead time              fee   boundary
=====================  ====  ==========================
>= 8 days              0 %   exactly 8 days: free
>= 48 hours            5 %   exactly 48 h: 5 %
>= 24 hours            10 %  exactly 24 h: 10 %
< 24 hours             20 %  until departure
at or after departure  --    no refund (RefundClosed)
=====================  ====  ==========================

Rounding (as 12306 does): the percentage fee is rounded to the nearest ``round_to_fen``
(50 fen = ¥0.5), halves up: under ¥0.25 is dropped, ¥0.25 up to ¥0.75 counts ¥0.5, from
¥0.75 a whole yuan. Then a charged fee is at least ``minimum_fen`` (¥2), and never more
than the ticket's price. A free tier charges nothing, minimum or not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field


class RefundClosed(ValueError):
    """The train has left the boarding station: a ticket can no longer be refunded."""


@dataclass(frozen=True, slots=True)
class FeeTier:
    min_lead: dt.timedelta
    basis_points: int  # 1/100 of a percent: 500 = 5 %

    def __post_init__(self) -> None:
        if not 0 <= self.basis_points <= 10_000:
            raise ValueError("a fee rate is 0..10000 basis points")
        if self.min_lead < dt.timedelta(0):
            raise ValueError("a tier's lead time is not negative")


DEFAULT_TIERS: tuple[FeeTier, ...] = (
    FeeTier(dt.timedelta(days=8), 0),
    FeeTier(dt.timedelta(hours=48), 500),
    FeeTier(dt.timedelta(hours=24), 1000),
    FeeTier(dt.timedelta(0), 2000),
)


@dataclass(frozen=True, slots=True)
class RefundSchedule:
    tiers: Sequence[FeeTier] = field(default=DEFAULT_TIERS)
    minimum_fen: int = 200
    round_to_fen: int = 50

    def __post_init__(self) -> None:
        leads = [t.min_lead for t in self.tiers]
        if not leads or leads != sorted(leads, reverse=True) or len(set(leads)) != len(leads):
            raise ValueError("tiers go from the longest lead time to the shortest, no repeats")
        if leads[-1] != dt.timedelta(0):
            raise ValueError("the last tier starts at a lead time of zero")
        if self.minimum_fen < 0 or self.round_to_fen < 1:
            raise ValueError("minimum_fen >= 0 and round_to_fen >= 1")

    def tier(self, lead: dt.timedelta) -> FeeTier:
        if lead <= dt.timedelta(0):
            raise RefundClosed("The train has departed; the ticket cannot be refunded.")
        for tier in self.tiers:
            if lead >= tier.min_lead:
                return tier
        raise AssertionError("unreachable: the last tier starts at zero")  # pragma: no cover

    def fee_fen(self, price_fen: int, *, departs: dt.datetime, now: dt.datetime) -> int:
        if price_fen < 0:
            raise ValueError("a price is not negative")
        if departs.tzinfo is None or now.tzinfo is None:
            raise ValueError("aware datetimes are required")
        tier = self.tier(departs - now)
        if tier.basis_points == 0 or price_fen == 0:
            return 0
        fee = round_half_up(price_fen * tier.basis_points, 10_000 * self.round_to_fen)
        fee *= self.round_to_fen
        return min(max(fee, self.minimum_fen), price_fen)

    def refund_fen(self, price_fen: int, *, departs: dt.datetime, now: dt.datetime) -> int:
        """What goes back to the citizen: the price less the fee."""
        return price_fen - self.fee_fen(price_fen, departs=departs, now=now)


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves up (both >= 0),
    in exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


DEFAULT_SCHEDULE = RefundSchedule()
